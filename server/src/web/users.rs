//! The rules for staff users, shared by the admin page and
//! `imc-server user` (`commands/user.rs`).

use super::passwords;
use super::store::{NewUser, Role};
use anyhow::bail;
use imc_shared::text;

/// Checks a new user's fields; the password hash is filled in by the caller.
pub fn validate(
    name: &str,
    role: &str,
    site: Option<String>,
    password: &str,
) -> anyhow::Result<NewUser> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 64
        || name
            .chars()
            .any(|c| c.is_whitespace() || text::is_refused(c))
    {
        bail!(
            "name must be 1-64 characters without spaces, control or bidirectional formatting characters"
        );
    }
    let role: Role = role.parse().map_err(anyhow::Error::msg)?;
    check_password(password)?;
    let site = site.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(site) = &site {
        text::check_identifier("site", site).map_err(anyhow::Error::from)?;
    }
    if role == Role::Clerk && site.is_none() {
        bail!("a clerk needs --site: the site whose desk they work at");
    }
    Ok(NewUser {
        name: name.to_owned(),
        role,
        site,
        password_hash: String::new(),
    })
}

pub fn check_password(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < passwords::MIN_PASSWORD_CHARS {
        bail!(
            "the password must have at least {} characters",
            passwords::MIN_PASSWORD_CHARS
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate("wang", "signoff", None, "longenough").is_ok());
        assert!(validate("wang", "boss", None, "longenough").is_err());
        assert!(validate("wang", "signoff", None, "short").is_err());
        assert!(validate("two words", "admin", None, "longenough").is_err());
        assert!(validate("li", "clerk", None, "longenough").is_err());
        let clerk = validate("li", "clerk", Some("shanghai".into()), "longenough").unwrap();
        assert_eq!(clerk.site.as_deref(), Some("shanghai"));
    }

    #[test]
    fn names_and_sites_refuse_controls_and_bidi_formatting() {
        for bad in [
            "wa\u{0}ng",
            "wang\u{1b}[31m",
            "wang\u{9b}",
            "gnaw\u{202e}",
            "wa\u{2067}ng",
            "wang\u{200e}",
        ] {
            assert!(
                validate(bad, "signoff", None, "longenough").is_err(),
                "{bad:?}"
            );
            let site = Some(format!("shang{bad}"));
            let error = validate("li", "clerk", site, "longenough").err();
            assert!(
                error.is_some_and(|e| e.to_string().starts_with("site ")),
                "{bad:?}"
            );
        }
    }
}
