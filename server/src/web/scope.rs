//! What part of the data a desk user may see. Clerks see only their own
//! site's: documents with a packet from the site, the site's packets and
//! their pages, its agents, and only those in live updates. Sign-off staff
//! and admins see every site.
//!
//! Checked on the server for every view, image and event, not only as the
//! queue's default filter. What lies outside a clerk's site answers "not
//! found", as a token limited to source systems is answered by the API, so
//! it does not tell what exists elsewhere.

use super::error::UiError;
use super::session::Staff;
use super::store::{Role, User};
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteScope {
    All,
    /// One site's data only.
    Site(String),
}

impl SiteScope {
    pub fn of(user: &User) -> SiteScope {
        match user.role {
            // A clerk without a site (refused by `user add`, but a row could
            // say so) gets a site no packet can carry, and so sees nothing.
            Role::Clerk => SiteScope::Site(user.site.clone().unwrap_or_default()),
            Role::SignOff | Role::Admin => SiteScope::All,
        }
    }

    /// The site to limit queries to; `None` for every site.
    pub fn site(&self) -> Option<String> {
        match self {
            SiteScope::All => None,
            SiteScope::Site(site) => Some(site.clone()),
        }
    }

    pub fn sees_site(&self, site: &str) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Site(own) => own == site,
        }
    }
}

impl Staff {
    pub fn scope(&self) -> SiteScope {
        SiteScope::of(&self.user)
    }
}

/// Refuses (as not found) a document the user may not see.
pub async fn require_document(state: &AppState, staff: &Staff, id: i64) -> Result<(), UiError> {
    if let SiteScope::Site(site) = staff.scope() {
        let visible = state.web.store.documents_at_site(vec![id], site).await?;
        if visible.is_empty() {
            return Err(UiError::NotFound(format!("document {id}")));
        }
    }
    Ok(())
}

/// Refuses (as not found) a packet from a site the user may not see.
pub fn require_packet_site(staff: &Staff, packet_site: &str, what: &str) -> Result<(), UiError> {
    if staff.scope().sees_site(packet_site) {
        Ok(())
    } else {
        Err(UiError::NotFound(what.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, site: Option<&str>) -> User {
        User {
            id: 1,
            name: "u".into(),
            role,
            site: site.map(str::to_owned),
            password_hash: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn clerks_see_their_site_and_others_every_site() {
        let clerk = SiteScope::of(&user(Role::Clerk, Some("bj")));
        assert!(clerk.sees_site("bj") && !clerk.sees_site("sh"));
        assert_eq!(clerk.site().as_deref(), Some("bj"));
        let lost = SiteScope::of(&user(Role::Clerk, None));
        assert!(!lost.sees_site("bj") && !lost.sees_site("sh"));
        for role in [Role::SignOff, Role::Admin] {
            let all = SiteScope::of(&user(role, Some("bj")));
            assert!(all.sees_site("sh"));
            assert_eq!(all.site(), None);
        }
    }
}
