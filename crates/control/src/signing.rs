//! Access keys and the seed cloud's request signature: what its SDKs send
//! instead of a token.
//!
//! An access key (AK) names a project; its secret key (SK) signs each
//! request as `SDK-HMAC-SHA256`: the SDK builds a canonical request
//! (method, URI, query, the signed headers, the body's SHA-256), hashes
//! it into a string to sign with the `X-Sdk-Date`, and sends
//! `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b,
//! Signature=HEX`, the HMAC-SHA256 of that string under the SK. The server
//! rebuilds the same string from what it received and compares the HMAC
//! in constant time.
//!
//! Guarantees:
//! - the canonical request follows the SDKs' rules exactly (each path
//!   segment decoded then encoded leaving only `A-Za-z0-9-._~`, a trailing
//!   `/`; query pairs sorted and encoded the same way; headers lower-cased
//!   and trimmed; `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` honoured);
//! - a date more than [`MOST_CLOCK_SKEW`] from the server's time is
//!   refused, so a captured request cannot be replayed later;
//! - secrets are kept sealed ([`SealingKey`]): the database alone does not
//!   give them back in clear.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The signature algorithm, first word of the `Authorization` header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// How far a request's `X-Sdk-Date` may be from the server's clock.
pub const MOST_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// The SHA-256 of nothing: an empty body's hash.
const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a signed request is refused; each says it as the cloud's gateway
/// does, after "Incorrect IAM authentication information: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The `Authorization` header is not `SDK-HMAC-SHA256 Access=...,
    /// SignedHeaders=..., Signature=...`.
    #[error(
        "the Authorization header must be `{ALGORITHM} Access=AK, SignedHeaders=..., Signature=...`"
    )]
    Malformed,
    /// No `X-Sdk-Date`, or not `yyyyMMddTHHmmssZ`.
    #[error("X-Sdk-Date is required, as yyyyMMddTHHmmssZ")]
    Date,
    /// The date is too far from the server's time.
    #[error("X-Sdk-Date {0} is more than 15 minutes from the server's time")]
    Expired(String),
    /// A header the signature covers was not sent.
    #[error("signed header `{0}` is missing")]
    MissingHeader(String),
    /// No such access key.
    #[error("access key {0} does not exist")]
    UnknownKey(String),
    /// The signature is not the one the secret key gives.
    #[error("verify aksk signature fail")]
    Mismatch,
    /// `X-Project-Id` is not the project of the path.
    #[error("X-Project-Id {0} is not the project of the request's path")]
    ProjectHeader(String),
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key.
    pub access_key: String,
    /// The signed headers, lower case, in the order signed.
    pub signed_headers: Vec<String>,
    /// The signature's bytes.
    pub signature: Vec<u8>,
}

impl Authorization {
    /// Parses `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=HEX`.
    pub fn parse(value: &str) -> Result<Authorization, SignatureError> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(SignatureError::Malformed)?;
        let (mut access, mut headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match k {
                "Access" => access = Some(v),
                "SignedHeaders" => headers = Some(v),
                "Signature" => signature = Some(v),
                _ => return Err(SignatureError::Malformed),
            }
        }
        let (Some(access), Some(headers), Some(signature)) = (access, headers, signature) else {
            return Err(SignatureError::Malformed);
        };
        let signature = hex_decode(signature).ok_or(SignatureError::Malformed)?;
        if access.is_empty() || headers.is_empty() {
            return Err(SignatureError::Malformed);
        }
        Ok(Authorization {
            access_key: access.to_string(),
            signed_headers: headers.split(';').map(str::to_ascii_lowercase).collect(),
            signature,
        })
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of a body, as the canonical request's last line.
pub fn body_hash(body: &[u8]) -> String {
    if body.is_empty() {
        EMPTY_HASH.to_string()
    } else {
        hex(&Sha256::digest(body))
    }
}

/// Percent-decodes `s` (invalid escapes are kept as written).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Percent-encodes every byte but `A-Za-z0-9-._~` (Python's `quote(s,
/// safe='~')`, which the SDKs use).
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What of a received request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The path, as received.
    pub path: &'a str,
    /// The query, as received (without `?`).
    pub query: Option<&'a str>,
    /// The body's hash ([`body_hash`], or the `X-Sdk-Content-Sha256`
    /// header's value).
    pub body_hash: &'a str,
}

/// The canonical request the SDK signed, from what was received;
/// `header(name)` gives a header's value (`name` in lower case).
pub fn canonical_request<'h>(
    r: &Received<'_>,
    signed_headers: &[String],
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<String, SignatureError> {
    let mut uri: String = r
        .path
        .split('/')
        .map(|segment| encode(&decode(segment)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = r
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let value = header(name).ok_or_else(|| SignatureError::MissingHeader(name.clone()))?;
        headers.push_str(name);
        headers.push(':');
        headers.push_str(value.trim());
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{uri}\n{query}\n{headers}\n{}\n{}",
        r.method.to_ascii_uppercase(),
        signed_headers.join(";"),
        r.body_hash
    ))
}

/// The string the SDK signs: the algorithm, the `X-Sdk-Date`, the
/// canonical request's hex SHA-256.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The hex signature of `string_to_sign` under `secret` (what an SDK
/// sends; for tests and the client).
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `signature` is `string_to_sign`'s under `secret`, compared in
/// constant time.
pub fn verify(secret: &str, string_to_sign: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// Checks an `X-Sdk-Date` (`yyyyMMddTHHmmssZ`) against `now` (Unix
/// seconds).
pub fn check_date(sdk_date: &str, now: i64) -> Result<(), SignatureError> {
    let t = chrono::NaiveDateTime::parse_from_str(sdk_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SignatureError::Date)?
        .and_utc()
        .timestamp();
    if t.abs_diff(now) > MOST_CLOCK_SKEW.as_secs() {
        return Err(SignatureError::Expired(sdk_date.to_string()));
    }
    Ok(())
}

/// The key secrets are sealed with: 32 random bytes in a file of the
/// server's data directory (0600), made at first use. Servers sharing one
/// database must share the file.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// The sealing key's file name in the data directory.
pub const SEALING_KEY_FILE: &str = "access-keys.key";

impl SealingKey {
    /// Reads the key at `path`, or makes one there.
    pub fn load_or_create(path: &Path) -> std::io::Result<SealingKey> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a 32-byte key", path.display()),
                    )
                })?;
                Ok(SealingKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                Ok(SealingKey(key))
            }
            Err(e) => Err(e),
        }
    }

    /// A key of known bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> SealingKey {
        SealingKey(key)
    }

    /// The pad for `access_key`'s secret: HMAC-SHA512 of the access key
    /// under this key. Access keys are unique and random, so no two
    /// secrets share a pad.
    fn pad(&self, access_key: &str) -> [u8; 64] {
        let mut mac = Hmac::<Sha512>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(b"vpcflow access key secret\0");
        mac.update(access_key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `secret` (at most 64 bytes) sealed for `access_key`, as hex.
    pub fn seal(&self, access_key: &str, secret: &str) -> String {
        let pad = self.pad(access_key);
        let sealed: Vec<u8> = secret.bytes().zip(pad.iter()).map(|(s, p)| s ^ p).collect();
        hex(&sealed)
    }

    /// The secret [`SealingKey::seal`] sealed, if `sealed` is one.
    pub fn open(&self, access_key: &str, sealed: &str) -> Option<String> {
        let pad = self.pad(access_key);
        let bytes = hex_decode(sealed)?;
        let secret: Vec<u8> = bytes.iter().zip(pad.iter()).map(|(s, p)| s ^ p).collect();
        String::from_utf8(secret).ok()
    }
}

/// A new access key and its secret: 20 and 40 characters of `A-Z0-9`, as
/// the cloud's.
pub fn new_access_key() -> std::io::Result<(String, String)> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz";
    let mut random = [0u8; 60];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    // 62 symbols: a byte modulo 62 is nearly uniform (248 of 256 values
    // map evenly); the rest only tilts the first eight symbols slightly.
    let text = |bytes: &[u8], upper: bool| -> String {
        bytes
            .iter()
            .map(|b| {
                let n = if upper { 36 } else { 62 };
                ALPHABET[usize::from(*b) % n] as char
            })
            .collect()
    };
    Ok((text(&random[..20], true), text(&random[20..], false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_request_follows_the_sdks_rules() {
        let received = Received {
            method: "get",
            path: "/v1/p1/fl%6fw_logs",
            query: Some("status=ACTIVE&limit=10&a%20b=x~y*"),
            body_hash: EMPTY_HASH,
        };
        let signed = vec!["host".to_string(), "x-sdk-date".to_string()];
        let c = canonical_request(&received, &signed, |h| match h {
            "host" => Some(" 127.0.0.1:9696 "),
            "x-sdk-date" => Some("20261204T150000Z"),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c,
            format!(
                "GET\n/v1/p1/flow_logs/\na%20b=x~y%2A&limit=10&status=ACTIVE\nhost:127.0.0.1:9696\nx-sdk-date:20261204T150000Z\n\nhost;x-sdk-date\n{EMPTY_HASH}"
            )
        );
        let missing = canonical_request(&received, &["x-project-id".to_string()], |_| None);
        assert_eq!(
            missing.unwrap_err(),
            SignatureError::MissingHeader("x-project-id".into())
        );
    }

    #[test]
    fn signatures_verify_under_their_secret_only() {
        let s = string_to_sign("20261204T150000Z", "GET\n/\n\n\n\n");
        let sig = sign("secret", &s);
        assert!(verify("secret", &s, &hex_decode(&sig).unwrap()));
        assert!(!verify("Secret", &s, &hex_decode(&sig).unwrap()));
        let a = Authorization::parse(&format!(
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;X-Sdk-Date, Signature={sig}"
        ))
        .unwrap();
        assert_eq!(a.access_key, "AK1");
        assert_eq!(a.signed_headers, ["host", "x-sdk-date"]);
        for bad in [
            "SDK-HMAC-SHA256 Access=AK1",
            "AWS4-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=00",
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=0g",
        ] {
            assert_eq!(
                Authorization::parse(bad),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_within_fifteen_minutes_only() {
        // 2026-12-04T15:00:00Z
        let now = 1_796_396_400;
        assert_eq!(check_date("20261204T150000Z", now), Ok(()));
        assert_eq!(check_date("20261204T151500Z", now), Ok(()));
        assert!(matches!(
            check_date("20261204T151501Z", now),
            Err(SignatureError::Expired(_))
        ));
        assert!(matches!(
            check_date("20261204T144459Z", now),
            Err(SignatureError::Expired(_))
        ));
        assert_eq!(
            check_date("2026-12-04T15:00:00Z", now),
            Err(SignatureError::Date)
        );
    }

    #[test]
    fn sealed_secrets_open_with_their_key_and_access_key_only() {
        let key = SealingKey::from_bytes([7; 32]);
        let (ak, sk) = new_access_key().unwrap();
        assert_eq!((ak.len(), sk.len()), (20, 40));
        assert!(
            ak.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let sealed = key.seal(&ak, &sk);
        assert!(!sealed.contains(&hex(sk.as_bytes())));
        assert_eq!(key.open(&ak, &sealed).as_deref(), Some(sk.as_str()));
        assert_ne!(key.open("OTHERKEY", &sealed).as_deref(), Some(sk.as_str()));
        let other = SealingKey::from_bytes([8; 32]);
        assert_ne!(other.open(&ak, &sealed).as_deref(), Some(sk.as_str()));
    }
}
