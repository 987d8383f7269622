//! URL normalisation, so the same article reached by different links is one item.
//!
//! The rules, in order: trim and drop the fragment; `http` and `https` are the same (`https`
//! is written); the host is lower-cased and loses `www.`, `m.`, `amp.` and `mobile.`, a default
//! port and a trailing dot; a Google AMP cache address (`…cdn.ampproject.org/c/s/host/path`)
//! becomes the address it caches; the path loses `/amp` at either end, `index.html`/`index.php`,
//! duplicate and trailing slashes; the query loses tracking parameters (`utm_*`, `fbclid`,
//! `gclid`, `igshid`, `ref`, `source`, `si`, `mc_cid`, `mc_eid`, `yclid`, `msclkid`, `_ga`,
//! `spm`, `amp`, `outputType=amp`, `page=all`, `single=1`, `s`/`t` share counters of X) and is
//! sorted. Percent-escapes of unreserved characters are decoded. Anything that is not an
//! `http(s)` URL is returned trimmed and lower-cased, so it still compares.

/// Query parameters that never change what a page shows.
const TRACKING: &[&str] = &[
    "fbclid", "gclid", "dclid", "igshid", "ref", "ref_src", "ref_url", "source", "si", "mc_cid",
    "mc_eid", "yclid", "msclkid", "_ga", "_gl", "spm", "amp", "cmpid", "cid", "feature", "share",
    "from", "utm",
];

/// Returns the normalised form of `url`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_lowercase();
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return url.to_lowercase();
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_query, ""),
    };
    // Credentials never identify an article.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let mut host = authority.to_ascii_lowercase();
    if let Some(h) = host
        .strip_suffix(":80")
        .or_else(|| host.strip_suffix(":443"))
    {
        host = h.to_owned();
    }
    let mut host = host.trim_end_matches('.').to_owned();
    let mut path = path.to_owned();
    // Google's AMP cache: /c/s/<host>/<path> (s = https) or /c/<host>/<path>.
    if host.ends_with(".cdn.ampproject.org") || host == "cdn.ampproject.org" {
        let inner = path
            .strip_prefix("/c/s/")
            .or_else(|| path.strip_prefix("/v/s/"))
            .or_else(|| path.strip_prefix("/c/"))
            .or_else(|| path.strip_prefix("/v/"));
        if let Some(inner) = inner {
            let (h, p) = inner.split_once('/').unwrap_or((inner, ""));
            host = h.to_ascii_lowercase();
            path = format!("/{p}");
        }
    }
    for prefix in ["www.", "m.", "amp.", "mobile."] {
        if let Some(h) = host.strip_prefix(prefix) {
            if h.contains('.') {
                host = h.to_owned();
            }
        }
    }
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_unreserved)
        .collect();
    if segments.first().is_some_and(|s| s == "amp") {
        segments.remove(0);
    }
    if segments
        .last()
        .is_some_and(|s| s == "amp" || s == "amp.html")
    {
        segments.pop();
    }
    if segments
        .last()
        .is_some_and(|s| matches!(s.as_str(), "index.html" | "index.php" | "index.htm"))
    {
        segments.pop();
    }
    if let Some(last) = segments.last_mut() {
        if let Some(stripped) = last.strip_suffix(".amp") {
            *last = stripped.to_owned();
        }
    }
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_unreserved(k), decode_unreserved(v))
        })
        .filter(|(k, v)| !is_tracking(&host, k, v))
        .collect();
    params.sort();
    params.dedup();
    let mut out = format!("https://{host}");
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if !params.is_empty() {
        out.push('?');
        let joined: Vec<String> = params
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        out.push_str(&joined.join("&"));
    }
    out
}

fn is_tracking(host: &str, key: &str, value: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.starts_with("utm_") || TRACKING.contains(&k.as_str()) {
        return true;
    }
    let v = value.to_ascii_lowercase();
    match k.as_str() {
        "outputtype" => v == "amp",
        "page" => v == "all",
        "single" => v == "1",
        // X (Twitter) share counters.
        "s" | "t" => host == "x.com" || host == "twitter.com",
        _ => false,
    }
}

/// Decodes percent-escapes of unreserved characters (letters, digits, `-._~`), which may be
/// written either way; other escapes are kept, upper-cased.
fn decode_unreserved(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let value = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = value {
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    out.push(v);
                } else {
                    out.push(b'%');
                    out.extend(bytes[i + 1..i + 3].to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real URL shapes of Indonesian news and social media, with invented article paths.
    #[test]
    fn real_url_shapes_normalise_to_one_form() {
        let same = [
            (
                "https://news.detik.com/berita/d-7000001/napi-kabur-dari-lapas?utm_source=twitter&utm_medium=social",
                "https://news.detik.com/berita/d-7000001/napi-kabur-dari-lapas",
            ),
            (
                "http://www.Kompas.com/regional/read/2026/11/02/101500978/napi-kabur/?page=all#comments",
                "https://kompas.com/regional/read/2026/11/02/101500978/napi-kabur",
            ),
            (
                "https://amp.kompas.com/regional/read/2026/11/02/101500978/napi-kabur",
                "https://kompas.com/regional/read/2026/11/02/101500978/napi-kabur",
            ),
            (
                "https://m.tribunnews.com/regional/2026/11/02/napi-kabur?fbclid=IwAR0abc",
                "https://tribunnews.com/regional/2026/11/02/napi-kabur",
            ),
            (
                "https://www.tribunnews.com/amp/regional/2026/11/02/napi-kabur",
                "https://tribunnews.com/regional/2026/11/02/napi-kabur",
            ),
            (
                "https://www-antaranews-com.cdn.ampproject.org/c/s/www.antaranews.com/berita/4000001/remisi-natal/amp",
                "https://antaranews.com/berita/4000001/remisi-natal",
            ),
            (
                "https://news.detik.com/berita/d-7000001/napi-kabur-dari-lapas?single=1",
                "https://news.detik.com/berita/d-7000001/napi-kabur-dari-lapas",
            ),
            (
                "https://www.instagram.com/p/C0ntohPost/?igshid=MzRlODBiNWFlZA==",
                "https://instagram.com/p/C0ntohPost",
            ),
            (
                "https://x.com/ditjenpas/status/1900000000000000001?s=20&t=AbCdEf",
                "https://x.com/ditjenpas/status/1900000000000000001",
            ),
            (
                "https://www.youtube.com/watch?v=abcDEF12345&si=xyz&feature=share",
                "https://youtube.com/watch?v=abcDEF12345",
            ),
            (
                "HTTPS://WWW.CNNINDONESIA.COM:443/nasional/20261102-1/razia-lapas/",
                "https://cnnindonesia.com/nasional/20261102-1/razia-lapas",
            ),
            (
                "https://regional.kompas.com/read/2026/11/02/1/x.amp?gclid=abc&ref=home",
                "https://regional.kompas.com/read/2026/11/02/1/x",
            ),
            (
                "https://example.go.id/berita/index.php?b=2&a=1",
                "https://example.go.id/berita?a=1&b=2",
            ),
            (
                "https://example.go.id/%7Eredaksi/%41rtikel",
                "https://example.go.id/~redaksi/Artikel",
            ),
        ];
        for (input, want) in same {
            assert_eq!(normalize_url(input), want, "{input}");
        }
    }

    #[test]
    fn meaningful_differences_stay() {
        // Another article id, another page of a paged article, another host.
        assert_ne!(
            normalize_url("https://detik.com/berita/d-1/a"),
            normalize_url("https://detik.com/berita/d-2/a")
        );
        assert_ne!(
            normalize_url("https://kompas.com/read/1?page=2"),
            normalize_url("https://kompas.com/read/1?page=3")
        );
        assert_ne!(
            normalize_url("https://news.detik.com/a"),
            normalize_url("https://finance.detik.com/a")
        );
        assert_eq!(normalize_url(" bukan url "), "bukan url");
    }
}
