//! The scenario's `hazards:` as the rules set aside: each rule is known
//! already (an unknown id fails while the file is read, at its line), and
//! an entry that lists migrations lists at least one.

use super::scenario::HazardsSection;
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::findings::ignore::{HazardIgnore, IgnoredRule};

pub(super) fn ignore(section: &HazardsSection, origin: &Origin) -> Result<HazardIgnore> {
    let mut out = Vec::new();
    for item in &section.ignore {
        let keys = &item.0;
        if keys.migrations.as_ref().is_some_and(|m| m.is_empty()) {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{}: hazards.ignore: `{}` lists no migration: name the migrations to ignore it for, or give the \
                 rule alone to ignore it for every migration",
                origin.shown(),
                keys.rule
            )));
        }
        out.push(IgnoredRule { rule: keys.rule, migrations: keys.migrations.clone() });
    }
    Ok(HazardIgnore(out))
}
