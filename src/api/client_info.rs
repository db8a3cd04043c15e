//! The optional body of `POST /session`: `{"client": {user, host,
//! ci_job_url, label}}`, read within a size limit and checked field by
//! field. Unknown keys are ignored, so newer clients may send more.

use super::error::ApiError;
use crate::coordinator::ClientInfo;
use crate::wire::{ClientInfoDto, CreateSessionRequestDto};
use axum::body::{Body, Bytes};
use axum::http::StatusCode;

/// Largest accepted body, in bytes (413 above).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

impl From<&ClientInfo> for ClientInfoDto {
    fn from(info: &ClientInfo) -> Self {
        ClientInfoDto {
            user: info.user.clone(),
            host: info.host.clone(),
            ci_job_url: info.ci_job_url.clone(),
            label: info.label.clone(),
        }
    }
}

/// Reads the body: empty (or only white space) means no client info, as
/// for a 1.4.0 client. Too large → 413; not the expected JSON or a bad
/// field → 422.
pub async fn read(body: Body) -> Result<Option<ClientInfo>, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: CreateSessionRequestDto = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::unprocessable(format!("body: {error}")))?;
    request
        .client
        .map(validate)
        .transpose()
        .map(Option::flatten)
}

/// Checks every field; `None` when none is given.
fn validate(dto: ClientInfoDto) -> Result<Option<ClientInfo>, ApiError> {
    let info = ClientInfo {
        user: field("user", dto.user, 64)?,
        host: field("host", dto.host, 255)?,
        ci_job_url: field("ci_job_url", dto.ci_job_url, 2048)?,
        label: field("label", dto.label, 512)?,
    };
    if let Some(url) = &info.ci_job_url
        && (!(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace))
    {
        return Err(ApiError::unprocessable(
            "client.ci_job_url: must be an http:// or https:// link without spaces",
        ));
    }
    Ok((info != ClientInfo::default()).then_some(info))
}

/// One text field: trimmed, empty → `None`, at most `max` characters, no
/// control characters.
fn field(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|text| text.trim().to_string()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(format!(
            "client.{name}: at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "client.{name}: control characters are not allowed"
        )));
    }
    Ok((!value.is_empty()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(body: &str) -> Result<Option<ClientInfo>, (StatusCode, String)> {
        read(Body::from(body.to_string()))
            .await
            .map_err(|error| (error.status, error.detail))
    }

    #[tokio::test]
    async fn no_body_or_no_client_means_no_info() {
        assert_eq!(parse("").await, Ok(None));
        assert_eq!(parse(" \n").await, Ok(None));
        assert_eq!(parse("{}").await, Ok(None));
        assert_eq!(parse(r#"{"client": {"user": "  "}}"#).await, Ok(None));
    }

    #[tokio::test]
    async fn fields_are_trimmed_and_unknown_keys_ignored() {
        let body =
            r#"{"client": {"user": " ada ", "ci_job_url": "https://ci/1", "os": "x"}, "v": 2}"#;
        let info = parse(body).await.unwrap().unwrap();
        assert_eq!(info.user.as_deref(), Some("ada"));
        assert_eq!(info.ci_job_url.as_deref(), Some("https://ci/1"));
        assert_eq!(info.host, None);
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_a_detail() {
        let cases = [
            ("not json", "body: "),
            (r#"{"client": "ada"}"#, "body: "),
            (r#"{"client": {"user": 7}}"#, "body: "),
            (
                r#"{"client": {"ci_job_url": "file:///etc"}}"#,
                "client.ci_job_url",
            ),
            (
                r#"{"client": {"label": "a\u0007b"}}"#,
                "client.label: control",
            ),
        ];
        for (body, start) in cases {
            let (status, detail) = parse(body).await.unwrap_err();
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(detail.starts_with(start), "{body}: {detail}");
        }
        let long = format!(r#"{{"client": {{"user": "{}"}}}}"#, "u".repeat(65));
        assert!(parse(&long).await.unwrap_err().1.contains("at most 64"));
        let huge = format!(
            r#"{{"client": {{"label": "{}"}}}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(
            parse(&huge).await.unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
