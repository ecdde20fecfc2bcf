//! Staff users from the command line (`imc-server user add|disable|enable|password`);
//! the admin page shares the checks here.

use super::passwords;
use super::store::{NewUser, Role};
use crate::config::ServerConfig;
use crate::store::{Actor, SqliteStore};
use anyhow::{Context, bail};
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

/// `imc-server user add`: asks for the password when none is given.
pub async fn add_from_cli(
    at: &crate::cli::StoreArgs,
    name: &str,
    role: &str,
    site: Option<String>,
    password: Option<String>,
) -> anyhow::Result<()> {
    let password = password_or_prompt(name, password)?;
    let new = validate(name, role, site, &password)?;
    // An embedded installation may not exist yet: the first admin comes before the server.
    if let Some(data_dir) = &at.data_dir {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let db = ServerConfig::new(data_dir.clone()).database_path();
        SqliteStore::open(&db).with_context(|| format!("opening database {}", db.display()))?;
    }
    let store = at.open().await?.desk;
    let password_hash = passwords::hash(password).await?;
    let user = store
        .add_user(
            NewUser {
                password_hash,
                ..new
            },
            &Actor("cli:user-add".into()),
        )
        .await
        .with_context(|| format!("adding user {name}"))?;
    println!(
        "user {} added with role {}{}",
        user.name,
        user.role.as_str(),
        user.site
            .as_deref()
            .map(|s| format!(" at site {s}"))
            .unwrap_or_default()
    );
    Ok(())
}

fn check_password(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < passwords::MIN_PASSWORD_CHARS {
        bail!(
            "the password must have at least {} characters",
            passwords::MIN_PASSWORD_CHARS
        );
    }
    Ok(())
}

/// `imc-server user disable|enable`.
pub async fn set_disabled_from_cli(
    at: &crate::cli::StoreArgs,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let store = at.open().await?.desk;
    let (verb, actor) = if disabled {
        ("disabling", "cli:user-disable")
    } else {
        ("enabling", "cli:user-enable")
    };
    store
        .set_user_disabled(name, disabled, &Actor(actor.into()))
        .await
        .with_context(|| format!("{verb} user {name}"))?;
    if disabled {
        println!("user {name} disabled; their sessions have ended");
    } else {
        println!("user {name} enabled");
    }
    Ok(())
}

/// `imc-server user password`: asks for it when none is given.
pub async fn set_password_from_cli(
    at: &crate::cli::StoreArgs,
    name: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let password = password_or_prompt(name, password)?;
    check_password(&password)?;
    let store = at.open().await?.desk;
    let password_hash = passwords::hash(password).await?;
    store
        .set_user_password(name, &password_hash, &Actor("cli:user-password".into()))
        .await
        .with_context(|| format!("setting the password of user {name}"))?;
    println!("password of user {name} changed; their sessions have ended");
    Ok(())
}

fn password_or_prompt(name: &str, given: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!("password for {name}: "))
        .context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
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
