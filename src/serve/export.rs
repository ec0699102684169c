//! (filled in by issue 10's export work)

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use super::state::App;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
}
