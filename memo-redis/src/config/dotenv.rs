//! Where [`Config::from_env`] reads its variables: the process environment and, with the `dotenv`
//! feature, a `.env` file in the current directory. The file never overrides a variable that is
//! set in the real environment (even to an empty value), and it is only read, never loaded into
//! the process environment (`std::env::set_var` races with other threads reading it).

#[cfg(feature = "dotenv")]
use std::path::Path;

use crate::config::Config;
use crate::error::ConfigError;

/// [`Config::from_env`] without the `dotenv` feature: the process environment only.
#[cfg(not(feature = "dotenv"))]
pub(crate) fn from_env() -> Result<Config, ConfigError> {
    Config::from_lookup(|name| std::env::var(name).ok())
}

/// [`Config::from_env`] with the `dotenv` feature: the environment, then `./.env` if present.
#[cfg(feature = "dotenv")]
pub(crate) fn from_env() -> Result<Config, ConfigError> {
    Config::from_env_and_file(".env")
}

#[cfg(feature = "dotenv")]
impl Config {
    /// Like [`Config::from_env`], also reading variables from the `.env`-format file at `path`
    /// (`KEY=value` lines, `#` comments, quotes, `export` prefixes and `${VAR}` substitution as
    /// in the `dotenvy` crate). A variable set in the process environment wins over the file; of
    /// two lines for the same variable the first wins. A missing file is no error.
    ///
    /// [`Config::from_env`] calls this with `.env` (in the current directory) when the `dotenv`
    /// feature is enabled.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is malformed or out of range, or
    /// `invalid .env file` when the file exists but cannot be read or parsed (the message names
    /// the variable on the bad line, never its value).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("memo-redis-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join(".env");
    /// std::fs::write(&path, "REDIS_PREFIX=from_file\nREDIS_DEFAULT_TTL=0\n").unwrap();
    /// let config = memo_redis::Config::from_env_and_file(&path)?;
    /// assert_eq!(config.namespace(), "from_file");
    /// assert_eq!(config.default_ttl(), None);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn from_env_and_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        from_file_and(path.as_ref(), |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }
}

/// The configuration from `env` (the real environment, or a stand-in in tests), falling back
/// to the variables of the file at `path`.
#[cfg(feature = "dotenv")]
fn from_file_and(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let file = read(path)?;
    Config::from_lookup(|name| {
        env(name).or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    })
}

/// The variables of a `.env` file, in order; none when there is no file.
#[cfg(feature = "dotenv")]
fn read(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: ".env file",
        value: path.display().to_string(),
        reason,
    };
    let describe = |e: dotenvy::Error| match e {
        // The parser's own message quotes the whole line, which may hold a password.
        dotenvy::Error::LineParse(line, _) => {
            let name = line.split('=').next().unwrap_or("").trim();
            format!("cannot parse the line of `{name}` (value not shown)")
        }
        other => other.to_string(),
    };
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => return Err(invalid(describe(e))),
    };
    iter.map(|item| item.map_err(|e| invalid(describe(e))))
        .collect()
}

#[cfg(all(test, feature = "dotenv"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh file with `contents` (no file when `None`), in a directory of its own.
    fn file(contents: Option<&str>) -> std::path::PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memo-redis-dotenv-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        if let Some(c) = contents {
            std::fs::write(&path, c).unwrap();
        }
        path
    }

    fn cleanup(path: &std::path::Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn table_of_files_and_environments() {
        /// (file, real environment, namespace, redacted url, default ttl in s)
        type Case<'a> = (
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            &'a str,
            &'a str,
            Option<u64>,
        );
        let cases: &[Case] = &[
            (None, &[], "memo", "redis://127.0.0.1:6379/0", Some(3600)),
            (
                None,
                &[("REDIS_PREFIX", "env")],
                "env",
                "redis://127.0.0.1:6379/0",
                Some(3600),
            ),
            (
                Some("REDIS_PREFIX=file\nREDIS_PORT=7000\nREDIS_DEFAULT_TTL=0\n"),
                &[],
                "file",
                "redis://127.0.0.1:7000/0",
                None,
            ),
            // The real environment wins, variable by variable.
            (
                Some("REDIS_PREFIX=file\nREDIS_PORT=7000\n"),
                &[("REDIS_PREFIX", "env")],
                "env",
                "redis://127.0.0.1:7000/0",
                Some(3600),
            ),
            // Set but empty in the environment still wins (and then means "unset").
            (
                Some("REDIS_PREFIX=file\n"),
                &[("REDIS_PREFIX", "")],
                "memo",
                "redis://127.0.0.1:6379/0",
                Some(3600),
            ),
            // Comments, quotes, `export`, substitution; the first of two lines wins.
            (
                Some(
                    "# cache\nexport REDIS_PREFIX=\"quoted\"\nREDIS_PREFIX=second\n\
                     REDIS_HOST='h1'\nPW=x\nREDIS_URL=redis://:${PW}@${REDIS_HOST}:6390/2\n",
                ),
                &[],
                "quoted",
                "redis://***@h1:6390/2",
                Some(3600),
            ),
            // Secrets from the file are redacted like any other.
            (
                Some("REDIS_PASSWORD=s3cret\nREDIS_USERNAME=app\n"),
                &[],
                "memo",
                "redis://***@127.0.0.1:6379/0",
                Some(3600),
            ),
        ];
        for (i, (contents, vars, ns, url, ttl)) in cases.iter().enumerate() {
            let path = file(*contents);
            let c = from_file_and(&path, env(vars)).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(c.namespace(), *ns, "case {i}");
            assert_eq!(c.redacted_url(), *url, "case {i}");
            assert_eq!(
                c.default_ttl(),
                ttl.map(std::time::Duration::from_secs),
                "case {i}"
            );
            for shown in [format!("{c:?}"), c.to_string()] {
                assert!(!shown.contains("s3cret"), "case {i}: {shown}");
            }
            cleanup(&path);
        }
    }

    #[test]
    fn table_of_bad_files() {
        let cases: &[(&str, &str)] = &[
            (
                "REDIS_PORT=70000\n",
                "invalid REDIS_PORT `70000`: must be 1-65535",
            ),
            (
                "REDIS_SSL=maybe\n",
                "invalid REDIS_SSL `maybe`: expected true or false",
            ),
            (
                "REDIS_PASSWORD=\"s3cret\n",
                "cannot parse the line of `REDIS_PASSWORD` (value not shown)",
            ),
        ];
        for (contents, want) in cases {
            let path = file(Some(contents));
            let err = from_file_and(&path, env(&[])).unwrap_err().to_string();
            assert!(err.contains(want), "{contents:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
            cleanup(&path);
        }
        // A bad value in the file is never reached when the environment sets the variable.
        let path = file(Some("REDIS_PORT=70000\n"));
        assert!(from_file_and(&path, env(&[("REDIS_PORT", "6380")])).is_ok());
        cleanup(&path);
        // A directory where the file should be: reported with the path.
        let dir = file(None);
        std::fs::create_dir_all(&dir).unwrap();
        let err = from_file_and(&dir, env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("invalid .env file `"), "{err}");
        cleanup(&dir);
    }
}
