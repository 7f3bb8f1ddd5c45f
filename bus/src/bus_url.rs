//! What parsing a `CATALOG_BUS` URL takes on either adapter: the scheme, the host part, the
//! query parameters, and numbers that must lie in a range, each failure naming the URL.

use std::ops::RangeInclusive;
use std::str::FromStr;

use events::bus::BusError;

/// A bus URL split into its host part and its query.
pub(crate) struct BusUrl<'a> {
    url: &'a str,
    /// What stands between `scheme://` and `?`, without a trailing `/`.
    pub(crate) hosts: &'a str,
    query: &'a str,
}

impl<'a> BusUrl<'a> {
    /// Splits `url`, which must start with `scheme` (`"kafka://"`); `hint` says so when not.
    pub(crate) fn parse(url: &'a str, scheme: &str, hint: &str) -> Result<Self, BusError> {
        let Some(rest) = url.strip_prefix(scheme) else {
            return Err(invalid(url, hint));
        };
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        Ok(BusUrl {
            url,
            hosts: hosts.trim_end_matches('/'),
            query,
        })
    }

    /// [`BusError::Invalid`] naming the URL and `why`.
    pub(crate) fn invalid(&self, why: &str) -> BusError {
        invalid(self.url, why)
    }

    /// The query parameters, decoded, in the order given.
    pub(crate) fn parameters(&self) -> url::form_urlencoded::Parse<'a> {
        url::form_urlencoded::parse(self.query.as_bytes())
    }

    /// `value` as a number in `range`; `why` is the error otherwise.
    pub(crate) fn number<T>(
        &self,
        value: &str,
        range: RangeInclusive<T>,
        why: &str,
    ) -> Result<T, BusError>
    where
        T: FromStr + PartialOrd,
    {
        value
            .parse()
            .ok()
            .filter(|number| range.contains(number))
            .ok_or_else(|| self.invalid(why))
    }
}

fn invalid(url: &str, why: &str) -> BusError {
    BusError::Invalid(format!("CATALOG_BUS {url:?}: {why}"))
}
