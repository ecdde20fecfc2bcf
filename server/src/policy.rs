//! The policy table: every route of both HTTP surfaces (the API under
//! `routes/`, the sign-off desk under `web/`) is registered here together
//! with who may call it (an [`Access`] rule, enforced by `auth::authorize`
//! before the handler runs). It sits below both surfaces, so neither needs
//! the other to register a route.

use crate::auth::{self, Access, Surface};
use crate::state::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;

/// A router under construction (the API's or the desk's), and its part of
/// the policy table: the (method, path, access) of every route it serves.
pub(crate) struct PolicyRoutes {
    pub(crate) router: Router<AppState>,
    pub(crate) served: Vec<(&'static str, &'static str, Access)>,
    surface: Surface,
}

impl PolicyRoutes {
    pub(crate) fn new(surface: Surface) -> PolicyRoutes {
        PolicyRoutes {
            router: Router::new(),
            served: Vec::new(),
            surface,
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        route: MethodRouter<AppState>,
    ) -> PolicyRoutes {
        let surface = self.surface;
        let refuse: auth::Refuse = match surface {
            Surface::Api => auth::api_refusal,
            Surface::Desk => crate::web::error::desk_refusal,
        };
        let mut route = route.route_layer(axum::middleware::from_fn(move |request, next| {
            auth::authorize(refuse, access, request, next)
        }));
        // What anyone can reach before logging in is under a budget (the
        // desk's session guard admits its anonymous requests itself).
        if access == Access::Public && surface == Surface::Api {
            route = route.route_layer(axum::middleware::from_fn(crate::preauth::guard));
        }
        // Two methods on one path merge into one method router.
        self.router = self.router.route(path, route);
        self.served.push((method, path, access));
        self
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("GET", path, access, axum::routing::get(h))
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("POST", path, access, axum::routing::post(h))
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("DELETE", path, access, axum::routing::delete(h))
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("PUT", path, access, axum::routing::put(h))
    }
}
