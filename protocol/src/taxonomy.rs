//! The report taxonomy, read from `config/taxonomy.toml`, which is compiled into the binary so the
//! agent and the collector always agree on it.

use crate::report::Priority;
use serde::Deserialize;
use std::sync::OnceLock;

/// The taxonomy file as shipped.
pub const TAXONOMY_TOML: &str = include_str!("../../config/taxonomy.toml");

/// One report category.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Category {
    /// The id used on the wire and on the command line, e.g. `kejadian_menonjol`.
    pub id: String,
    /// The Indonesian label shown to people, e.g. `Kejadian Menonjol`.
    pub label: String,
    /// A one-line description for forms and help texts.
    #[serde(default)]
    pub description: String,
    /// The priority a report gets when the filer does not choose one.
    #[serde(default)]
    pub default_priority: Priority,
}

/// All categories, in display order.
#[derive(Clone, Debug, Deserialize)]
pub struct Taxonomy {
    #[serde(rename = "category")]
    categories: Vec<Category>,
}

/// A taxonomy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("the taxonomy is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("the taxonomy lists category `{0}` twice")]
    Duplicate(String),
    #[error("the taxonomy has no categories")]
    Empty,
}

impl Taxonomy {
    /// Parses and checks a taxonomy file.
    pub fn parse(text: &str) -> Result<Taxonomy, TaxonomyError> {
        let taxonomy: Taxonomy = toml::from_str(text)?;
        if taxonomy.categories.is_empty() {
            return Err(TaxonomyError::Empty);
        }
        for (i, c) in taxonomy.categories.iter().enumerate() {
            if taxonomy.categories[..i].iter().any(|o| o.id == c.id) {
                return Err(TaxonomyError::Duplicate(c.id.clone()));
            }
        }
        Ok(taxonomy)
    }

    /// The taxonomy compiled into this build. A unit test proves the shipped file parses.
    pub fn builtin() -> &'static Taxonomy {
        static BUILTIN: OnceLock<Taxonomy> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used)]
            Taxonomy::parse(TAXONOMY_TOML).expect("config/taxonomy.toml is checked by a unit test")
        })
    }

    /// The category with this id.
    pub fn get(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// All categories in display order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The ids, comma-separated, for error messages.
    pub fn id_list(&self) -> String {
        self.categories
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_taxonomy_has_the_nine_categories() {
        let t = Taxonomy::parse(TAXONOMY_TOML).unwrap();
        let ids: Vec<_> = t.categories().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "pembinaan_kepribadian",
                "pembinaan_kemandirian",
                "layanan_kunjungan",
                "layanan_kesehatan",
                "keamanan_ketertiban",
                "integrasi_remisi",
                "kegiatan_kedinasan",
                "kejadian_menonjol",
                "humas"
            ]
        );
        assert!(t.categories().iter().all(|c| !c.label.is_empty()));
        assert_eq!(
            t.get("kejadian_menonjol").unwrap().default_priority,
            Priority::Urgent
        );
        assert_eq!(t.get("humas").unwrap().default_priority, Priority::Normal);
    }

    #[test]
    fn duplicates_are_refused() {
        let text = "[[category]]\nid='a'\nlabel='A'\n[[category]]\nid='a'\nlabel='B'\n";
        assert!(matches!(
            Taxonomy::parse(text),
            Err(TaxonomyError::Duplicate(_))
        ));
    }
}
