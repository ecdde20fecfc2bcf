//! The desk's words: one catalogue per language (`en.rs`, `zh.rs`), each a
//! value of [`Text`], so a missing translation is a compile error.

mod en;
mod zh;

use axum::http::HeaderMap;
use imc_shared::DocStatus;
use imc_shared::api::{AttachmentCheck, AttachmentVerdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

pub const LANG_COOKIE: &str = "imc_lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "zh" | "zh-CN" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The toggle's cookie first, then the browser's first choice we speak.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(lang) = super::cookies::cookie(headers, LANG_COOKIE).and_then(Lang::from_code) {
            return lang;
        }
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        for tag in accept.split(',') {
            let tag = tag
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &en::TEXT,
            Lang::Zh => &zh::TEXT,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }
}

/// Every string the desk shows.
pub struct Text {
    pub product: &'static str,
    pub language_name: &'static str,
    pub nav_queue: &'static str,
    pub nav_unmatched: &'static str,
    pub nav_agents: &'static str,
    pub nav_admin: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,

    pub login_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_button: &'static str,
    pub logged_out: &'static str,
    pub login_failed: &'static str,
    pub login_locked: &'static str,
    pub login_busy: &'static str,

    pub queue_title: &'static str,
    pub queue_empty: &'static str,
    pub matched_total: &'static str,
    pub shown: &'static str,
    pub filter: &'static str,
    pub all: &'static str,
    pub site: &'static str,
    pub org: &'static str,
    pub doc_type: &'static str,
    pub doc_no: &'static str,
    pub title: &'static str,
    pub amount: &'static str,
    pub submitter: &'static str,
    pub pages: &'static str,
    pub waiting_since: &'static str,
    pub open: &'static str,
    pub previous: &'static str,
    pub next: &'static str,
    pub live_hint: &'static str,

    pub status: &'static str,
    pub status_awaiting_images: &'static str,
    pub status_matched: &'static str,
    pub status_ready: &'static str,
    pub status_rejected: &'static str,
    pub status_cancelled: &'static str,

    pub source_system: &'static str,
    pub cover_code: &'static str,
    pub mode: &'static str,
    pub created_at: &'static str,
    pub updated_at: &'static str,
    pub reject_reason: &'static str,
    pub page: &'static str,
    pub of: &'static str,
    pub blank_page: &'static str,
    /// Beside the count of blank pages, whether shown or not.
    pub blank_pages: &'static str,
    pub confirm_revoke_agent: &'static str,
    /// A packet whose pages came with no cover sheet.
    pub no_cover: &'static str,
    /// After the count on the list of packets waiting for a document.
    pub packets_waiting: &'static str,
    /// The document a matched packet went to.
    pub matched_to: &'static str,
    pub confirm_disable_user: &'static str,
    /// A packet's state and a document's image mode in words: (code, label).
    pub packet_states: &'static [(&'static str, &'static str)],
    pub modes: &'static [(&'static str, &'static str)],
    /// The audit trail's actions as the history shows them: (action, label).
    pub actions: &'static [(&'static str, &'static str)],
    /// Who did it, by the kind before the audit actor's `:`: (kind, label).
    pub actor_kinds: &'static [(&'static str, &'static str)],
    pub pages_received: &'static str,
    pub show_blank: &'static str,
    pub no_pages: &'static str,
    pub barcodes: &'static str,
    pub no_barcodes: &'static str,
    /// Retention removed this page's bytes; followed by when and why.
    pub image_purged: &'static str,
    pub vat_invoice: &'static str,
    pub vat_code: &'static str,
    pub vat_number: &'static str,
    pub vat_amount: &'static str,
    pub vat_date: &'static str,
    pub duplicate_invoice: &'static str,
    pub also_on: &'static str,
    pub zoom_in: &'static str,
    pub zoom_out: &'static str,
    pub rotate: &'static str,
    pub previous_page: &'static str,
    pub next_page: &'static str,
    pub not_viewable: &'static str,
    pub download: &'static str,

    pub decisions: &'static str,
    pub sign_off: &'static str,
    pub reject: &'static str,
    pub reason: &'static str,
    pub reason_required: &'static str,
    pub revoke: &'static str,
    pub next_document: &'static str,
    pub back_to_queue: &'static str,
    pub no_decision_possible: &'static str,
    pub read_only_role: &'static str,
    pub signed_off_flash: &'static str,
    pub rejected_flash: &'static str,
    pub revoked_flash: &'static str,
    pub already_decided: &'static str,
    pub changed_elsewhere: &'static str,
    pub reload: &'static str,
    pub shortcuts: &'static str,
    pub shortcut_help: &'static str,

    pub history: &'static str,
    pub when: &'static str,
    pub who: &'static str,
    pub action: &'static str,
    pub change: &'static str,

    pub unmatched_title: &'static str,
    pub unmatched_empty: &'static str,
    pub packet: &'static str,
    pub agent: &'static str,
    pub received: &'static str,
    pub why_unmatched: &'static str,
    pub find_document: &'static str,
    pub search_hint: &'static str,
    pub search: &'static str,
    pub no_results: &'static str,
    pub attach: &'static str,
    pub attached_flash: &'static str,

    pub agents_title: &'static str,
    pub agents_empty: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub last_contact: &'static str,
    pub never: &'static str,
    pub queue_depth: &'static str,
    pub errors: &'static str,
    pub enrolled: &'static str,
    pub revoked: &'static str,
    pub active: &'static str,
    pub revoke_agent: &'static str,
    pub new_code: &'static str,
    pub new_code_for_site: &'static str,
    pub code_issued: &'static str,
    pub expires: &'static str,

    pub admin_title: &'static str,
    pub schemes: &'static str,
    pub save: &'static str,
    pub settings: &'static str,
    pub settings_hint: &'static str,
    pub users: &'static str,
    pub role: &'static str,
    pub add_user: &'static str,
    pub disable_user: &'static str,
    pub enable_user: &'static str,
    pub disabled_users: &'static str,
    pub saved_flash: &'static str,

    pub error_title: &'static str,
    pub forbidden: &'static str,
    pub not_found: &'static str,

    /// Attachment check lines; `{declared}`, `{scanned}` and `{diff}` are
    /// filled in by [`Text::attachment_check`].
    pub attachments: &'static str,
    pub attachments_declared: &'static str,
    pub attachments_ok: &'static str,
    pub attachments_missing: &'static str,
    pub attachments_extra: &'static str,
}

impl Text {
    /// The attachment line: the declared count alone until a packet is
    /// attached, then the check's verdict.
    pub fn attachment_check(&self, declared: u32, check: Option<&AttachmentCheck>) -> String {
        let (template, scanned) = match check {
            None => (self.attachments_declared, 0),
            Some(c) => (
                match c.verdict {
                    AttachmentVerdict::Ok => self.attachments_ok,
                    AttachmentVerdict::Missing => self.attachments_missing,
                    AttachmentVerdict::Extra => self.attachments_extra,
                },
                c.scanned,
            ),
        };
        template
            .replace("{declared}", &declared.to_string())
            .replace("{scanned}", &scanned.to_string())
            .replace("{diff}", &declared.abs_diff(scanned).to_string())
    }

    /// A code from one of the catalogue's tables in words; unknown, as it is.
    fn word<'a>(table: &'static [(&'static str, &'static str)], code: &'a str) -> &'a str {
        table
            .iter()
            .find(|(known, _)| *known == code)
            .map_or(code, |(_, label)| label)
    }

    pub fn packet_state<'a>(&self, state: &'a str) -> &'a str {
        Self::word(self.packet_states, state)
    }

    pub fn mode<'a>(&self, mode: &'a str) -> &'a str {
        Self::word(self.modes, mode)
    }

    /// An audit action in words; one the catalogue does not know, as stored.
    pub fn action<'a>(&self, action: &'a str) -> &'a str {
        Self::word(self.actions, action)
    }

    /// An audit actor (`user:wang`, `agent:<id>`, `admin:erp-prod`) in words:
    /// the kind translated, then the name (`agent_name` turns an agent's id
    /// into its name).
    pub fn actor(&self, actor: &str, agent_name: impl Fn(&str) -> Option<String>) -> String {
        let Some((kind, name)) = actor.split_once(':') else {
            return actor.to_owned();
        };
        let name = match kind {
            "agent" => agent_name(name).unwrap_or_else(|| name.to_owned()),
            _ => name.to_owned(),
        };
        match self.actor_kinds.iter().find(|(known, _)| *known == kind) {
            Some((_, label)) => format!("{label} {name}"),
            None => actor.to_owned(),
        }
    }

    pub fn status(&self, status: DocStatus) -> &'static str {
        match status {
            DocStatus::AwaitingImages => self.status_awaiting_images,
            DocStatus::Matched => self.status_matched,
            DocStatus::Ready => self.status_ready,
            DocStatus::Rejected => self.status_rejected,
            DocStatus::Cancelled => self.status_cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_language_and_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::from_headers(&headers), Lang::En);
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap(),
        );
        assert_eq!(Lang::from_headers(&headers), Lang::Zh);
        headers.insert(axum::http::header::COOKIE, "imc_lang=en".parse().unwrap());
        assert_eq!(Lang::from_headers(&headers), Lang::En);
        assert_ne!(Lang::Zh.text().sign_off, Lang::En.text().sign_off);
    }

    #[test]
    fn every_audit_action_and_actor_kind_has_words_in_both_languages() {
        fn keys(pairs: &[(&'static str, &'static str)]) -> Vec<&'static str> {
            pairs.iter().map(|(k, _)| *k).collect()
        }
        let (en, zh) = (Lang::En.text(), Lang::Zh.text());
        assert_eq!(keys(en.actions), keys(zh.actions));
        assert_eq!(keys(en.actor_kinds), keys(zh.actor_kinds));
        assert_eq!(keys(en.packet_states), keys(zh.packet_states));
        assert_eq!(keys(en.modes), keys(zh.modes));
        for state in ["open", "unmatched", "matched", "empty"] {
            assert_ne!(zh.packet_state(state), state, "{state} untranslated");
        }
        for mode in ["match", "basic", "sync"] {
            assert_ne!(zh.mode(mode), mode, "{mode} untranslated");
        }
        // Every action the stores write is in the catalogue.
        for action in [
            "document.create",
            "packet.match",
            "packet.supplement",
            "packet.rescan",
            "images.upload",
            "images.sync",
            crate::domain::receipt::RECEIVE_ACTION,
            crate::store::PURGE_ACTION,
            "sign-off",
            "reject",
            "unsign",
            "cancel",
        ] {
            assert_ne!(zh.action(action), action, "{action} untranslated");
        }
        let names = |id: &str| (id == "a1").then(|| "Front desk 2".to_owned());
        assert_eq!(zh.actor("agent:a1", names), "扫描台 Front desk 2");
        assert_eq!(en.actor("user:wang", names), "staff wang");
        assert_eq!(en.actor("agent:gone", names), "scan desk gone");
        assert_eq!(en.actor("odd", names), "odd");
    }
}
