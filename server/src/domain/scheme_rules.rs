//! The rules an image scheme may carry (`PUT /schemes/{name}` `rules`), and
//! which scheme applies to a document. A rule IMC does not know is refused
//! when the scheme is saved, so a typo never passes as a rule that does
//! nothing.

use serde::Deserialize;

/// A scheme's rules; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeRules {
    /// A cover push must declare its attachment count.
    #[serde(default)]
    pub require_attachment_count: bool,
    /// Only desk staff, not API tokens, sign off documents with attachment
    /// pages (附件签收只支持人工签收).
    #[serde(default)]
    pub attachments_manual_signoff: bool,
    /// Sign-off staff may upload images into a match-mode document from the desk.
    #[serde(default)]
    pub allow_desk_upload: bool,
    /// Paper awaited longer than this many days is overdue.
    #[serde(default)]
    pub overdue_after_days: Option<u32>,
}

/// Why a scheme's rules were refused, in the API's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError(pub String);

impl SchemeRules {
    /// The rules of a scheme as stored or sent: absent means none.
    pub fn parse(rules: Option<&serde_json::Value>) -> Result<SchemeRules, RulesError> {
        let Some(rules) = rules else {
            return Ok(SchemeRules::default());
        };
        let rules = SchemeRules::deserialize(rules).map_err(|e| {
            RulesError(format!(
                "{e}; known rules: require_attachment_count, attachments_manual_signoff, \
                 allow_desk_upload, overdue_after_days"
            ))
        })?;
        if rules.overdue_after_days == Some(0) {
            return Err(RulesError(
                "overdue_after_days must be at least 1".to_owned(),
            ));
        }
        Ok(rules)
    }
}

/// The scheme that decides for a document of `org` and `doc_type`: the most
/// specific one (org and type, then type, then org, then neither), by name
/// among equals; None when no scheme applies (the document is basic).
pub fn applicable<'a, S>(
    schemes: &'a [S],
    org: &str,
    doc_type: &str,
    fields: impl Fn(&S) -> (&str, Option<&str>, Option<&str>),
) -> Option<&'a S> {
    schemes
        .iter()
        .filter(|s| {
            let (_, s_org, s_type) = fields(s);
            s_org.is_none_or(|o| o == org) && s_type.is_none_or(|t| t == doc_type)
        })
        .max_by(|a, b| {
            let (a_name, a_org, a_type) = fields(a);
            let (b_name, b_org, b_type) = fields(b);
            let rank = |org: Option<&str>, ty: Option<&str>| {
                2 * u8::from(ty.is_some()) + u8::from(org.is_some())
            };
            rank(a_org, a_type)
                .cmp(&rank(b_org, b_type))
                // Among equals the first name wins, as the stores order it.
                .then_with(|| b_name.cmp(a_name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_rules_parse_and_unknown_ones_are_refused() {
        let rules = SchemeRules::parse(Some(&json!({
            "require_attachment_count": true, "overdue_after_days": 3
        })))
        .unwrap();
        assert!(rules.require_attachment_count);
        assert_eq!(rules.overdue_after_days, Some(3));
        assert_eq!(SchemeRules::parse(None).unwrap(), SchemeRules::default());
        let typo = SchemeRules::parse(Some(&json!({"require_attachement_count": true})));
        assert!(typo.unwrap_err().0.contains("require_attachement_count"));
        assert!(SchemeRules::parse(Some(&json!({"overdue_after_days": 0}))).is_err());
        assert!(SchemeRules::parse(Some(&json!({"overdue_after_days": "3"}))).is_err());
        assert!(SchemeRules::parse(Some(&json!([1]))).is_err());
    }

    #[test]
    fn the_most_specific_scheme_applies() {
        let schemes = [
            ("global", None, None),
            ("hq", Some("HQ"), None),
            ("expense", None, Some("expense")),
            ("hq-expense", Some("HQ"), Some("expense")),
        ];
        let pick = |org, ty| applicable(&schemes, org, ty, |s| (s.0, s.1, s.2)).map(|s| s.0);
        assert_eq!(pick("HQ", "expense"), Some("hq-expense"));
        assert_eq!(pick("BR", "expense"), Some("expense"));
        assert_eq!(pick("HQ", "payable"), Some("hq"));
        assert_eq!(pick("BR", "payable"), Some("global"));
        assert_eq!(
            applicable(&schemes[1..2], "BR", "payable", |s| (s.0, s.1, s.2)),
            None
        );
    }
}
