//! The optional body of `POST /session`: `{"client": {user, host,
//! ci_job_url, label}, "heartbeat_seconds": n}`, read within a size limit
//! and checked field by field. Unknown keys are ignored, so newer clients
//! may send more.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use crate::domain::ClientInfo;
use crate::queue::Lease;
use crate::wire::{ClientInfoDto, CreateSessionRequestDto};

/// Largest accepted body, in bytes (413 above).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// The longest the whole body may take to arrive (408 past it): a few
/// kilobytes need no more, and a client that announces a body and never
/// sends it must not hold a connection open.
pub const BODY_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the body said, checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SessionBody {
    pub client: Option<ClientInfo>,
    pub lease: Option<Lease>,
}

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

/// Reads the body. None, empty (or only white space) and JSON `null` say
/// nothing, as for a 1.4.0 client. Too large → 413; not all there within
/// [`BODY_READ_LIMIT`] → 408; anything but a JSON object (an array, a
/// number…) or a bad field → 422.
pub async fn read(body: Body) -> Result<SessionBody, ApiError> {
    let read = tokio::time::timeout(BODY_READ_LIMIT, axum::body::to_bytes(body, MAX_BODY_BYTES));
    let bytes: Bytes = read
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Request body did not arrive within {} s",
                    BODY_READ_LIMIT.as_secs()
                ),
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(SessionBody::default());
    }
    let unreadable = |error: serde_json::Error| ApiError::unprocessable(format!("body: {error}"));
    // Looked at as a value first: serde would also build the request from
    // a JSON array (its fields in order), which the document does not allow.
    match serde_json::from_slice::<Value>(&bytes).map_err(unreadable)? {
        Value::Null => Ok(SessionBody::default()),
        Value::Object(mut object) => {
            // serde reads a struct from an array too (fields in order).
            if object
                .get("client")
                .is_some_and(|client| !client.is_object() && !client.is_null())
            {
                return Err(ApiError::unprocessable(
                    "client: expected a JSON object ({\"user\": …, \"host\": …}) or null",
                ));
            }
            // Checked on its own, so a bad value is named in the answer.
            let lease = object
                .remove("heartbeat_seconds")
                .filter(|value| !value.is_null())
                .map(lease)
                .transpose()?;
            let request: CreateSessionRequestDto =
                serde_json::from_value(Value::Object(object)).map_err(unreadable)?;
            Ok(SessionBody {
                client: request.client.map(validate).transpose()?.flatten(),
                lease,
            })
        }
        _ => Err(ApiError::unprocessable(
            "body: expected a JSON object ({\"client\": {…}, \"heartbeat_seconds\": n}) or nothing",
        )),
    }
}

/// `heartbeat_seconds`: a whole number of seconds in [`Lease::SECONDS`].
fn lease(value: Value) -> Result<Lease, ApiError> {
    value.as_u64().and_then(Lease::every).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "heartbeat_seconds: expected a whole number of seconds from {} to {}, got {value}",
            Lease::SECONDS.start(),
            Lease::SECONDS.end()
        ))
    })
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

/// One text field: invisible characters removed, trimmed, empty → `None`,
/// at most `max` characters, no control characters or line breaks.
fn field(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|text| visible(&text).trim().to_string()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(format!(
            "client.{name}: at most {max} characters"
        )));
    }
    if value.chars().any(|c| c.is_control() || line_break(c)) {
        return Err(ApiError::unprocessable(format!(
            "client.{name}: control characters and line breaks are not allowed"
        )));
    }
    Ok((!value.is_empty()).then_some(value))
}

/// `text` without the characters that show nothing themselves but may
/// change how the rest is shown: with them a name on the dashboard could
/// pose as another ("ada" reversed into "ada" by a bidirectional override,
/// the "Trojan Source" trick, CVE-2021-42574; or padded with fillers).
fn visible(text: &str) -> String {
    text.chars().filter(|c| !default_ignorable(*c)).collect()
}

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt,
/// Unicode 16.0): what a renderer shows nothing for when it does not
/// support it. It covers the bidirectional formatting characters (UAX #9),
/// the zero-width ones, the soft hyphen, the Hangul fillers, variation
/// selectors and the tag characters.
fn default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' // soft hyphen
        | '\u{034F}' // combining grapheme joiner
        | '\u{061C}' // arabic letter mark
        | '\u{115F}'..='\u{1160}' // Hangul choseong and jungseong fillers
        | '\u{17B4}'..='\u{17B5}' // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}' // Mongolian variation selectors, vowel separator
        | '\u{200B}'..='\u{200F}' // zero width space, (non-)joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}' // embeddings and overrides
        | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates, deprecated format
        | '\u{3164}' // Hangul filler
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FEFF}' // zero width no-break space
        | '\u{FFA0}' // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFF8}' // unassigned specials
        | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}' // musical symbol format controls
        | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// The line and paragraph separators (U+2028, U+2029): line breaks that
/// `char::is_control` does not count.
fn line_break(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(body: &str) -> Result<SessionBody, (StatusCode, String)> {
        read(Body::from(body.to_string()))
            .await
            .map_err(|error| (error.status, error.detail))
    }

    #[tokio::test]
    async fn no_body_null_or_no_fields_say_nothing() {
        for body in ["", " \n", "null", "{}", r#"{"client": {"user": "  "}}"#] {
            assert_eq!(parse(body).await, Ok(SessionBody::default()), "{body:?}");
        }
    }

    #[tokio::test]
    async fn fields_are_trimmed_and_unknown_keys_ignored() {
        let body =
            r#"{"client": {"user": " ada ", "ci_job_url": "https://ci/1", "os": "x"}, "v": 2}"#;
        let info = parse(body).await.unwrap().client.unwrap();
        assert_eq!(info.user.as_deref(), Some("ada"));
        assert_eq!(info.ci_job_url.as_deref(), Some("https://ci/1"));
        assert_eq!(info.host, None);
    }

    #[tokio::test]
    async fn a_heartbeat_interval_is_a_lease() {
        let body = parse(r#"{"heartbeat_seconds": 5}"#).await.unwrap();
        assert_eq!((body.client, body.lease), (None, Lease::every(5)));
        for bad in ["0", "301", "-1", "2.5", "\"5\""] {
            let (status, detail) = parse(&format!(r#"{{"heartbeat_seconds": {bad}}}"#))
                .await
                .unwrap_err();
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert!(detail.contains("heartbeat_seconds"), "{bad}: {detail}");
        }
    }

    #[tokio::test]
    async fn invisible_formatting_characters_are_removed() {
        let body = r#"{"client": {"user": "\u202eada\u202c", "host": "ci\u200b-1\ufeff"}}"#;
        let info = parse(body).await.unwrap().client.unwrap();
        assert_eq!(info.user.as_deref(), Some("ada"));
        assert_eq!(info.host.as_deref(), Some("ci-1"));
        let only = parse(r#"{"client": {"label": "\u2066\u2069"}}"#).await;
        assert_eq!(only, Ok(SessionBody::default()));
        // Soft hyphen, grapheme joiner, Hangul fillers, a variation
        // selector, a Khmer vowel, a tag character: all show nothing.
        let padded =
            r#"{"client": {"user": "a\u00add\u034fa\u115f\u3164\ufe0f\u17b4\udb40\udc41"}}"#;
        let info = parse(padded).await.unwrap().client.unwrap();
        assert_eq!(info.user.as_deref(), Some("ada"));
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_a_detail() {
        let cases = [
            ("not json", "body: "),
            ("[]", "body: expected a JSON object"),
            (r#"[{"user": "ada"}]"#, "body: expected a JSON object"),
            ("7", "body: expected a JSON object"),
            (r#"{"client": "ada"}"#, "client: expected a JSON object"),
            (r#"{"client": {"user": 7}}"#, "body: "),
            (
                r#"{"client": {"ci_job_url": "file:///etc"}}"#,
                "client.ci_job_url",
            ),
            (
                r#"{"client": {"label": "a\u0007b"}}"#,
                "client.label: control",
            ),
            (
                r#"{"client": {"label": "a\u2028b"}}"#,
                "client.label: control characters and line breaks",
            ),
            (
                r#"{"client": ["ada", "ci-1", "https://ci/1", "x"]}"#,
                "client: expected a JSON object",
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
