//! Values of environment variables whose names look like secrets
//! (`DB_PASSWORD`, `API_TOKEN`, `AWS_SECRET_ACCESS_KEY`...) are never
//! shown: wherever corefit prints a variable with its value (`corefit
//! plan`'s worker environment, text and JSON; messages about a setting),
//! the value goes through [`shown`]. The workers themselves get the real
//! values; only what is printed is redacted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::Serializer;

/// Printed instead of a secret's value.
pub const REDACTED: &str = "<redacted>";

/// A name containing one of these (in any case) names a secret.
const SECRET_WORDS: [&str; 6] = [
    "PASSWORD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
];

/// Does `name` look like it holds a secret?
/// (`/(PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE)/i`)
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// The value of `name` as it may be printed.
pub fn shown<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if is_secret_name(name) {
        Cow::Borrowed(REDACTED)
    } else {
        Cow::Borrowed(value)
    }
}

/// As [`shown`], quoted (`{:?}`) unless redacted: for messages.
pub fn quoted(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        REDACTED.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// Serializes an environment with secret values redacted (for
/// `#[serde(serialize_with)]` on printed maps).
pub fn serialize_env<S: Serializer>(
    env: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(env.len()))?;
    for (k, v) in env {
        map.serialize_entry(k, shown(k, v).as_ref())?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_in_any_case() {
        for name in [
            "DB_PASSWORD",
            "API_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_CREDENTIALS",
            "SSH_PRIVATE_KEY",
            "stripe_key",
            "Session_Secret",
            "npm_token",
            "KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
            assert_eq!(shown(name, "hunter2"), REDACTED);
            assert_eq!(quoted(name, "hunter2"), REDACTED);
        }
        for name in [
            "COREFIT_WORKERS",
            "NODE_OPTIONS",
            "GOMAXPROCS",
            "WEB_CONCURRENCY",
            "PORT",
            "PATH",
        ] {
            assert!(!is_secret_name(name), "{name}");
            assert_eq!(shown(name, "4"), "4");
            assert_eq!(quoted(name, "a\"b"), "\"a\\\"b\"");
        }
    }

    #[test]
    fn serialized_maps_redact_values_and_keep_names() {
        #[derive(serde::Serialize)]
        struct Doc {
            #[serde(serialize_with = "serialize_env")]
            env: BTreeMap<String, String>,
        }
        let env = BTreeMap::from([
            ("API_TOKEN".to_owned(), "tok-123".to_owned()),
            ("GOMAXPROCS".to_owned(), "2".to_owned()),
        ]);
        let json = serde_json::to_string(&Doc { env }).unwrap();
        assert_eq!(
            json,
            r#"{"env":{"API_TOKEN":"<redacted>","GOMAXPROCS":"2"}}"#
        );
    }
}
