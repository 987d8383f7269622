//! The morning digest ("Ringkasan pagi"): what happened on one day (yesterday by default, WIB)
//! within a user's scope: the stories with their tone, spike alerts, urgent reports, units
//! without news or reports, the units' official responses, and the risk picture. Built from
//! the same scoped reads as the pages, and rendered as a printable page, as HTML for an email
//! and as plain text for an email or a chat message, all in Bahasa Indonesia.

use super::api::{alert_list, find_reports, scoped_stories, ListQuery};
use super::scope::Reach;
use super::show::Names;
use crate::store::Scope;
use crate::ServerState;
use axum::response::Response;
use maud::{html, Markup};
use pasopati_analysis::insight::{date_string, day_of};
use pasopati_common::{Priority, Timestamp};

/// How many entries of each list a digest names (the counts are always whole).
const SHOWN: usize = 10;

/// One day's digest for one scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Digest {
    /// "Nasional", "Kanwil Jawa Tengah" or the site's name.
    pub scope: String,
    /// The day, `YYYY-MM-DD` (WIB).
    pub day: String,
    pub reports: usize,
    pub urgent: Vec<Line>,
    pub urgent_total: usize,
    /// Stories with media on the day: title, items, tone label.
    pub stories: Vec<(String, usize, &'static str)>,
    pub stories_total: usize,
    pub negative_stories: usize,
    pub alerts: Vec<String>,
    pub silent_units: Vec<String>,
    pub silent_total: usize,
    pub responses: Vec<Line>,
    /// The highest risk scores today: name and score.
    pub risk: Vec<(String, f64)>,
}

/// One entry: who and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub unit: String,
    pub text: String,
}

/// The day a digest is for: `tanggal` when given (`YYYY-MM-DD`), else yesterday (WIB).
pub fn day_asked(tanggal: Option<&str>, now: Timestamp) -> i64 {
    tanggal
        .and_then(|t| super::api::parse_when(t, false))
        .map(day_of)
        .unwrap_or_else(|| day_of(now.0) - 1)
}

/// Whether an RFC 3339 time falls on `day` or between two such times that span it.
fn spans(first: &str, last: &str, day: i64) -> bool {
    let day_of_text = |t: &str| Timestamp::parse_rfc3339(t).ok().map(|t| day_of(t.0));
    match (day_of_text(first), day_of_text(last)) {
        (Some(a), Some(b)) => a <= day && day <= b,
        _ => false,
    }
}

/// The digest of `day` for what `reach` sees.
pub(crate) fn build(state: &ServerState, reach: &Reach, day: i64) -> Result<Digest, Response> {
    let store = &state.store;
    let names = Names::of(store);
    let date = date_string(day);
    let scope = match reach.scope() {
        Scope::National => "Nasional".to_owned(),
        Scope::Kanwil(k) => format!("Kanwil {k}"),
        Scope::Site(s) => names.unit(s),
    };
    let of_day = ListQuery {
        since: Some(date.clone()),
        until: Some(date.clone()),
        limit: Some(1),
        ..ListQuery::default()
    };
    let (_, total) = find_reports(state, reach, &of_day)?;
    let urgent_query = ListQuery {
        priority: Some(Priority::Urgent.as_str().into()),
        limit: Some(SHOWN),
        ..of_day
    };
    let (urgent, urgent_total) = find_reports(state, reach, &urgent_query)?;
    let urgent = urgent
        .iter()
        .map(|r| Line {
            unit: names.unit(r.site.as_str()),
            text: format!(
                "{} ({})",
                r.report.title,
                names.time(r.site.as_str(), r.report.occurred_at.0)
            ),
        })
        .collect();

    let all = scoped_stories(state, reach)?;
    let mut stories: Vec<_> = all
        .iter()
        .filter(|s| !s.items.is_empty() && spans(&s.first_seen, &s.last_seen, day))
        .collect();
    stories.sort_by(|a, b| {
        b.items
            .len()
            .cmp(&a.items.len())
            .then(b.last_seen.cmp(&a.last_seen))
    });
    let tone = |s: f64| pasopati_analysis::sentiment::class(s as f32);
    let negative_stories = stories
        .iter()
        .filter(|s| tone(s.sentiment) == "negatif")
        .count();

    let alerts = alert_list(state, reach)?
        .into_iter()
        .filter(|a| a["period"].as_str() == Some(date.as_str()))
        .map(|a| {
            format!(
                "{}: {} item (biasanya {})",
                a["label"].as_str().unwrap_or_default(),
                a["count"],
                a["baseline_mean"]
            )
        })
        .collect();

    let insights = state
        .newsroom
        .insights(None)
        .map_err(super::api::internal)?;
    let silent: Vec<String> = insights["coverage"]["silent_upt"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str())
        .filter(|u| reach.tagged(&[u.to_string()], &[]))
        .map(|u| names.unit(u))
        .collect();

    let responses = store
        .responses()
        .map_err(super::api::internal)?
        .into_iter()
        .filter(|r| reach.site(&r.site) && day_of(r.written_at) == day)
        .map(|r| Line {
            unit: names.unit(&r.site),
            text: format!(
                "atas \u{201c}{}\u{201d} ({}): {}",
                r.story_title,
                r.state.label(),
                r.text
            ),
        })
        .collect();

    let picture = crate::risk::picture(store, &state.config, Timestamp::now(), 1)
        .map_err(super::api::internal)?;
    let mut risk: Vec<(String, f64)> = picture
        .upt
        .iter()
        .chain(&picture.kanwil)
        .filter_map(|r| match &r.today.scope {
            pasopati_analysis::risk::Scope::Upt(id)
                if reach.tagged(std::slice::from_ref(id), &[]) =>
            {
                Some((names.unit(id), r.today.score))
            }
            pasopati_analysis::risk::Scope::Kanwil(k)
                if reach.is_national()
                    || matches!(reach.scope(), Scope::Kanwil(mine) if mine == k) =>
            {
                Some((format!("Kanwil {k}"), r.today.score))
            }
            _ => None,
        })
        .filter(|(_, score)| *score > 0.0)
        .collect();
    risk.sort_by(|a, b| b.1.total_cmp(&a.1));
    risk.truncate(5);

    Ok(Digest {
        scope,
        day: date,
        reports: total.count,
        urgent,
        urgent_total: urgent_total.count,
        stories_total: stories.len(),
        negative_stories,
        stories: stories
            .iter()
            .take(SHOWN)
            .map(|s| (s.title.clone(), s.items.len(), tone(s.sentiment)))
            .collect(),
        alerts,
        silent_total: silent.len(),
        silent_units: silent.into_iter().take(SHOWN).collect(),
        responses,
        risk,
    })
}

impl Digest {
    /// The title of an email or message carrying it.
    pub fn subject(&self) -> String {
        format!("Ringkasan pagi PASOPATI — {} — {}", self.scope, self.day)
    }

    /// The digest as HTML, for the page and for an email (no script, no external resource).
    pub fn html(&self) -> Markup {
        html! {
            article.ringkasan-pagi {
                p { b { (self.scope) } " · " (self.day) " (WIB) · " (self.reports) " laporan UPT · " (self.urgent_total) " mendesak · "
                    (self.stories_total) " cerita media (" (self.negative_stories) " bernada negatif)" }
                h2 { "Laporan mendesak" }
                @if self.urgent.is_empty() { p { "Tidak ada." } }
                ul { @for l in &self.urgent { li.urgent { b { (l.unit) } ": " (l.text) } } }
                @if self.urgent_total > self.urgent.len() { p { small { "dan " (self.urgent_total - self.urgent.len()) " lainnya." } } }
                h2 { "Cerita media" }
                @if self.stories.is_empty() { p { "Tidak ada cerita media hari itu." } }
                ul { @for (title, items, tone) in &self.stories { li { (title) " — " (items) " item, " span class=(tone) { (tone) } } } }
                h2 { "Lonjakan" }
                @if self.alerts.is_empty() { p { "Tidak ada." } }
                ul { @for a in &self.alerts { li { (a) } } }
                h2 { "Tanggapan resmi UPT" }
                @if self.responses.is_empty() { p { "Tidak ada." } }
                ul { @for l in &self.responses { li { b { (l.unit) } " " (l.text) } } }
                h2 { "Tanpa kabar (30 hari tanpa laporan dan tanpa pemberitaan)" }
                p { (self.silent_total) " UPT" @if !self.silent_units.is_empty() { ": " (self.silent_units.join(", ")) @if self.silent_total > self.silent_units.len() { ", …" } } }
                h2 { "Risiko tertinggi hari ini" }
                @if self.risk.is_empty() { p { "Tidak ada skor di atas nol." } }
                ul { @for (name, score) in &self.risk { li { (name) ": " b { (format!("{score:.0}")) } } } }
            }
        }
    }

    /// The digest as plain text, for an email's text part or a chat message.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}\n{} laporan UPT, {} mendesak; {} cerita media ({} bernada negatif).\n",
            self.subject(),
            self.reports,
            self.urgent_total,
            self.stories_total,
            self.negative_stories
        );
        let mut section = |title: &str, lines: Vec<String>| {
            out.push_str(&format!("\n{title}\n"));
            if lines.is_empty() {
                out.push_str("- tidak ada\n");
            }
            for l in lines {
                out.push_str(&format!("- {l}\n"));
            }
        };
        section(
            "Laporan mendesak:",
            self.urgent
                .iter()
                .map(|l| format!("{}: {}", l.unit, l.text))
                .collect(),
        );
        section(
            "Cerita media:",
            self.stories
                .iter()
                .map(|(t, n, tone)| format!("{t} ({n} item, {tone})"))
                .collect(),
        );
        section("Lonjakan:", self.alerts.clone());
        section(
            "Tanggapan resmi UPT:",
            self.responses
                .iter()
                .map(|l| format!("{} {}", l.unit, l.text))
                .collect(),
        );
        section(
            &format!("Tanpa kabar: {} UPT", self.silent_total),
            self.silent_units.clone(),
        );
        section(
            "Risiko tertinggi hari ini:",
            self.risk
                .iter()
                .map(|(n, s)| format!("{n}: {s:.0}"))
                .collect(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_asked_is_yesterday_unless_given() {
        // 2026-12-02 00:30 WIB is 2026-12-01 17:30 UTC.
        let now = Timestamp::parse_rfc3339("2026-12-01T17:30:00Z").unwrap_or(Timestamp(0));
        assert_eq!(date_string(day_asked(None, now)), "2026-12-01");
        assert_eq!(
            date_string(day_asked(Some("2026-11-20"), now)),
            "2026-11-20"
        );
        assert_eq!(
            date_string(day_asked(Some("bukan tanggal"), now)),
            "2026-12-01"
        );
    }

    #[test]
    fn a_story_counts_on_every_day_it_spans() {
        let day = day_of(Timestamp::parse_rfc3339("2026-11-20T12:00:00+07:00").map_or(0, |t| t.0));
        assert!(spans(
            "2026-11-19T10:00:00+07:00",
            "2026-11-21T10:00:00+07:00",
            day
        ));
        assert!(spans(
            "2026-11-20T00:10:00+07:00",
            "2026-11-20T00:10:00+07:00",
            day
        ));
        assert!(!spans(
            "2026-11-21T00:10:00+07:00",
            "2026-11-22T00:10:00+07:00",
            day
        ));
        assert!(!spans("rusak", "2026-11-22T00:10:00+07:00", day));
    }

    #[test]
    fn the_text_names_every_section_even_when_empty() {
        let d = Digest {
            scope: "Kanwil Jawa Tengah".into(),
            day: "2026-11-20".into(),
            reports: 3,
            urgent: vec![Line {
                unit: "Lapas Uji".into(),
                text: "Kebakaran kecil (uji)".into(),
            }],
            urgent_total: 1,
            ..Digest::default()
        };
        let text = d.text();
        assert!(
            text.starts_with("Ringkasan pagi PASOPATI — Kanwil Jawa Tengah — 2026-11-20\n"),
            "{text}"
        );
        for section in [
            "Laporan mendesak:",
            "Cerita media:",
            "Lonjakan:",
            "Tanggapan resmi UPT:",
            "Tanpa kabar: 0 UPT",
            "Risiko tertinggi hari ini:",
        ] {
            assert!(text.contains(section), "{section} missing: {text}");
        }
        assert!(text.contains("- Lapas Uji: Kebakaran kecil (uji)"));
    }
}
