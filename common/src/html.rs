//! The page shell both daemons' web pages share (the site's report form and the collector's
//! dashboard): Bahasa Indonesia, UTF-8, and a viewport that fits a phone's screen.

use maud::{html, Markup, DOCTYPE};

/// A whole page: `title`, what `head` adds to the head (a style sheet, a script), and `body`.
pub fn page(title: &str, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="id" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                (head)
            }
            body { (body) }
        }
    }
}
