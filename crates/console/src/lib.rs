//! The web console of `vpcflow serve`: a page at `/` and its script and
//! style under `/console/`, embedded in the binary (no build step, no CDN,
//! nothing fetched at run time but the API).
//!
//! The console is a client of the public API and nothing else: it signs in
//! with a project token (kept in the tab's session storage, sent as
//! `X-Auth-Token`), so it can never show more than that token's project.
//! What it knows of the record (the fields a search may name, their order
//! in the records table) it reads from `/console/fields.json`, made here
//! from the record's one field table ([`vpcflow_core::schema::FIELDS`]).
//!
//! Guarantees: every answer has its exact content type, a strong `ETag`
//! (a hash of its bytes) with `Cache-Control: no-cache` (a browser asks
//! again and gets `304 Not Modified` while the binary is the same), and a
//! content security policy that allows scripts, styles and connections to
//! this origin only.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use vpcflow_core::schema::{FIELDS, Kind, Tier};

/// One file the console serves.
#[derive(Debug)]
pub struct Asset {
    /// Its path.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: std::borrow::Cow<'static, [u8]>,
    etag: String,
}

impl Asset {
    fn new(
        path: &'static str,
        content_type: &'static str,
        bytes: std::borrow::Cow<'static, [u8]>,
    ) -> Asset {
        let etag = format!("\"{:016x}\"", fnv1a(&bytes));
        Asset {
            path,
            content_type,
            bytes,
            etag,
        }
    }

    /// Its entity tag, quoted as the header carries it.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// 64-bit FNV-1a: enough to tell one build's file from another's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The policy every console answer carries: nothing but this origin, no
/// inline script or style, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Every file the console serves.
pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    use std::borrow::Cow::Borrowed;
    vec![
        Asset::new(
            "/",
            "text/html; charset=utf-8",
            Borrowed(include_bytes!("../assets/index.html")),
        ),
        Asset::new(
            "/console/console.js",
            "text/javascript; charset=utf-8",
            Borrowed(include_bytes!("../assets/console.js")),
        ),
        Asset::new(
            "/console/charts.js",
            "text/javascript; charset=utf-8",
            Borrowed(include_bytes!("../assets/charts.js")),
        ),
        Asset::new(
            "/console/console.css",
            "text/css; charset=utf-8",
            Borrowed(include_bytes!("../assets/console.css")),
        ),
        Asset::new(
            "/console/icon.svg",
            "image/svg+xml",
            Borrowed(include_bytes!("../assets/icon.svg")),
        ),
        Asset::new(
            "/console/fields.json",
            "application/json",
            fields_json().into_bytes().into(),
        ),
    ]
});

/// The record's fields as the console offers them: seed name (what a
/// search names), column (what a records answer is keyed by), whether it
/// is a number, and its tier (`v1`, `v2`, `extension`), in record order.
pub fn fields_json() -> String {
    let fields: Vec<serde_json::Value> = FIELDS
        .iter()
        .filter(|f| f.stored)
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "column": f.column,
                "number": f.kind == Kind::Number,
                "tier": match f.tier {
                    Tier::V1 => "v1",
                    Tier::V2 => "v2",
                    Tier::Extension => "extension",
                },
            })
        })
        .collect();
    serde_json::Value::Array(fields).to_string()
}

/// The console's routes, to merge beside the API's.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |r, asset| {
        r.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        )
    })
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.bytes.clone(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ETAG, asset.etag.as_str()),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_asset_has_its_type_and_a_tag_that_answers_not_modified() {
        for asset in ASSETS.iter() {
            let r = get(asset.path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", asset.path);
            let h = r.headers().clone();
            assert_eq!(h[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(
                h[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], &asset.bytes[..], "{}", asset.path);
            let tag = h[header::ETAG].to_str().unwrap();
            let again = get(asset.path, Some(tag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", asset.path);
            let stale = get(asset.path, Some("\"0\"")).await;
            assert_eq!(stale.status(), StatusCode::OK, "{}", asset.path);
        }
        let tags: std::collections::HashSet<&str> = ASSETS.iter().map(Asset::etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn the_page_loads_only_this_origins_files_and_no_inline_script() {
        let page = std::str::from_utf8(&ASSETS[0].bytes).unwrap();
        for asset in ASSETS.iter().skip(1).filter(|a| a.path.ends_with(".js")) {
            assert!(
                page.contains(&format!("src=\"{}\"", asset.path)),
                "{}",
                asset.path
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        // Every script tag has a src: the policy would block an inline one.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=").count()
        );
        for asset in ASSETS.iter() {
            let text = String::from_utf8_lossy(&asset.bytes);
            assert!(
                !text.contains("//cdn") && !text.contains("https://"),
                "{}",
                asset.path
            );
        }
    }

    #[test]
    fn the_fields_are_the_stored_ones_in_record_order() {
        let v: serde_json::Value = serde_json::from_str(&fields_json()).unwrap();
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let stored: Vec<&str> = FIELDS.iter().filter(|f| f.stored).map(|f| f.name).collect();
        assert_eq!(names, stored);
        assert!(names.contains(&"log-status") && names.contains(&"decided-by"));
        let bytes = v
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "bytes")
            .unwrap();
        assert_eq!(bytes["number"], true);
    }
}
