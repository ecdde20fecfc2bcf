//! Staff of the sign-off desk: their roles and what each may do.

use super::Actor;

/// What a staff member may do on the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 签收岗: decides on documents and fixes unmatched packets.
    SignOff,
    /// 收单员: sees the queues and the desks of a site; decides nothing.
    Clerk,
    /// Everything sign-off staff do, plus agents, schemes, settings, users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SignOff => "signoff",
            Role::Clerk => "clerk",
            Role::Admin => "admin",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Clerk => 0,
            Role::SignOff => 1,
            Role::Admin => 2,
        }
    }

    /// Whether this role may do all that `needed` may: clerk < sign-off staff < admin.
    pub fn includes(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    pub fn may_decide(self) -> bool {
        self.includes(Role::SignOff)
    }

    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "signoff" => Ok(Role::SignOff),
            "clerk" => Ok(Role::Clerk),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}; use signoff, clerk or admin"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The clerk's site: their pages open filtered to it.
    pub site: Option<String>,
    pub password_hash: String,
    pub created_at: String,
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor(format!("user:{}", self.name))
    }
}
