//! `postgres.platform`: the managed platform whose limits the copy
//! reproduces, its profile found and checked against the rest of the
//! scenario before anything starts.

use super::production::ProductionPlan;
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::platform::{self, Platform, Profile};

/// The platform the rehearsal reproduces.
#[derive(Debug, Clone, Copy)]
pub struct PlatformPlan {
    pub platform: Platform,
    pub profile: &'static Profile,
}

/// The scenario's platform; none for `self-managed` (or no key). A
/// platform has no superuser, so production's role recorded as one contradicts it.
pub(super) fn plan(
    platform: Option<Platform>,
    production: Option<&ProductionPlan>,
    origin: &Origin,
) -> Result<Option<PlatformPlan>> {
    let Some(platform) = platform else { return Ok(None) };
    let Some(profile) = platform::profile(platform) else { return Ok(None) };
    if let Some(role) = production.and_then(|p| p.role.as_ref()).filter(|r| r.superuser) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: postgres.platform is {platform}, which has no superuser ({} gives its customers {}), but \
             production.stats records the migration role {} as a superuser: record the role that runs the \
             migrations on {platform} (`rehearse stats --role NAME`), or remove postgres.platform",
            origin.shown(),
            profile.name,
            profile.pseudo_superuser.name,
            role.name
        )));
    }
    Ok(Some(PlatformPlan { platform, profile }))
}

impl PlatformPlan {
    /// Checks that the profile has an extension list for the server's
    /// `version` ("15.18"), when it is known before the run (the local
    /// binaries'); otherwise the run checks it once the server answers.
    pub(super) fn check_version(&self, version: &str, origin: &Origin) -> Result<()> {
        let Some(major) = version.split('.').next().and_then(|m| m.parse().ok()) else { return Ok(()) };
        self.extensions_for(major).map(|_| ()).map_err(|e| e.context(origin.shown()))
    }

    /// The extensions offered for `major`, or the bad-input error that says
    /// which majors the profile has lists for.
    pub fn extensions_for(&self, major: i32) -> Result<&'static platform::ExtensionList> {
        self.profile.extensions_for(major).map_err(|majors| {
            ErrorKind::ScenarioInvalid.error(format!(
                "postgres.platform {}: {} has no extension list for PostgreSQL {major} (it has lists for {majors}): \
                 rehearse on one of those majors (postgres.version), or add a list for {major} to that file, \
                 with the documentation page it comes from",
                self.platform, self.profile.file
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::stats::MigrationRole;

    fn production(superuser: bool) -> ProductionPlan {
        let role = MigrationRole {
            name: "migrator".into(),
            superuser,
            createrole: true,
            createdb: true,
            bypassrls: false,
            replication: false,
            inherit: true,
            member_of: vec!["rds_superuser".into()],
            settings: Vec::new(),
        };
        ProductionPlan {
            stats: "prod-stats.json".into(),
            role: Some(role),
            settings: Vec::new(),
            not_applied: Vec::new(),
        }
    }

    #[test]
    fn a_platform_refuses_a_superuser_migration_role_and_self_managed_is_none() {
        let origin = Origin::new(std::path::Path::new("scenario.yaml"));
        let e = plan(Some(Platform::Rds), Some(&production(true)), &origin).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ScenarioInvalid);
        assert!(e.render().contains("rds_superuser") && e.render().contains("migrator"), "{}", e.render());
        let rds = plan(Some(Platform::Rds), Some(&production(false)), &origin).unwrap().unwrap();
        assert_eq!(rds.profile.pseudo_superuser.name, "rds_superuser");
        assert!(plan(Some(Platform::SelfManaged), None, &origin).unwrap().is_none());
        assert!(plan(None, None, &origin).unwrap().is_none());
    }

    #[test]
    fn a_major_without_a_list_is_bad_input_naming_the_majors_and_the_file() {
        let origin = Origin::new(std::path::Path::new("scenario.yaml"));
        let aurora = plan(Some(Platform::Aurora), None, &origin).unwrap().unwrap();
        let e = aurora.check_version("17.2", &origin).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ScenarioInvalid);
        assert!(e.render().contains("data/platforms/aurora.yaml") && e.render().contains("lists for 15"));
        aurora.check_version("15.8", &origin).unwrap();
    }
}
