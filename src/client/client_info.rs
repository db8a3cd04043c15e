//! Who is asking: the `client` object sent with `POST /session`, taken from
//! the environment as the Python client does, and fitted to the server's
//! limits so it never causes a 422.

use crate::wire::ClientInfoDto;

/// This process's client info: `user` (`LOGNAME`, `USER`, `LNAME` or
/// `USERNAME`), `host` (the host name), `ci_job_url` (see [`ci_job_url`])
/// and `label` as given, each left out when unknown.
pub fn from_environment(label: Option<&str>) -> ClientInfoDto {
    let user = ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|user| !user.is_empty()));
    ClientInfoDto {
        user: fit(user.as_deref(), 64),
        host: fit(host_name().as_deref(), 255),
        ci_job_url: ci_job_url(|name| std::env::var(name).ok()).filter(|url| usable_link(url)),
        label: fit(label, 512),
    }
}

/// The CI job's page: `CI_JOB_URL` (GitLab), else
/// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`
/// (GitHub Actions), else `BUILD_URL` (Jenkins).
pub fn ci_job_url(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(url) = set("CI_JOB_URL") {
        return Some(url);
    }
    if let (Some(server), Some(repository), Some(run)) = (
        set("GITHUB_SERVER_URL"),
        set("GITHUB_REPOSITORY"),
        set("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repository}/actions/runs/{run}"));
    }
    set("BUILD_URL")
}

/// Control characters become spaces, the text is trimmed and cut to `max`
/// characters (ending in "…"); empty text is left out.
fn fit(text: Option<&str>, max: usize) -> Option<String> {
    let clean: String = text?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    if clean.chars().count() <= max {
        return Some(clean.to_string());
    }
    let cut: String = clean.chars().take(max - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// A link the server takes: http(s), ASCII without spaces, not too long (a
/// cut link would lead nowhere, so a long one is left out).
fn usable_link(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && url.chars().all(|c| c.is_ascii_graphic())
}

fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(buffer.len());
    Some(String::from_utf8_lossy(&buffer[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_job_url_prefers_gitlab_then_github_then_jenkins() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        const GITHUB: &[(&str, &str)] = &[
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "7"),
            ("BUILD_URL", "https://jenkins/1"),
        ];
        assert_eq!(
            ci_job_url(env(&[("CI_JOB_URL", "https://gl/1"), ("BUILD_URL", "x")])).as_deref(),
            Some("https://gl/1")
        );
        assert_eq!(
            ci_job_url(env(GITHUB)).as_deref(),
            Some("https://github.com/o/r/actions/runs/7")
        );
        assert_eq!(ci_job_url(env(&[])), None);
    }

    #[test]
    fn text_is_cleaned_and_cut_to_the_limit() {
        assert_eq!(fit(Some(" a\u{7}b "), 64).as_deref(), Some("a b"));
        assert_eq!(fit(Some("  "), 64), None);
        let long = fit(Some(&"x".repeat(600)), 512).unwrap();
        assert_eq!(long.chars().count(), 512);
        assert!(long.ends_with('…'));
        assert!(!usable_link("file:///etc"));
        assert!(!usable_link("https://a b"));
    }
}
