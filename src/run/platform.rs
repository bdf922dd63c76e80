//! The copy as a managed platform has it (`postgres.platform`), made by the
//! superuser after the restore and the settings, before production's role
//! (which may be a member of the pseudo-superuser): the platform's
//! pseudo-superuser with its documented attributes and predefined roles,
//! `CREATE` on the rehearsal database for it when its members create
//! extensions, and the guard that refuses `CREATE EXTENSION` of what the
//! platform does not offer for the server's major (`platform::guard`).
//! The migration role is never a superuser on a platform: production's is
//! checked by the plan; without `production.as_role` the migrations run as
//! the copy's superuser, which the report states as a limitation.

use tokio_postgres::Client;

use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{ErrorKind, Result};
use crate::plan::platform::PlatformPlan;
use crate::platform::guard::{self, Guard};
use crate::platform::{ExtensionList, PseudoSuperuser};
use crate::report::{AllowlistReport, PlatformReport, PseudoSuperuserReport};
use crate::sys::db::quote_ident;

/// Applies the platform's profile to the copy, on `admin` (the superuser's
/// session in the rehearsal database). `as_role`: the migrations run as
/// production's role (`production.as_role`), not the superuser.
pub async fn reproduce(
    plan: &PlatformPlan,
    server: &Throwaway,
    admin: &Client,
    as_role: bool,
) -> Result<PlatformReport> {
    let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the copy's version and extensions", e);
    let major = catalog::server_version_num(admin).await.map_err(env)?.major();
    let list = plan.extensions_for(major)?;
    let profile = plan.profile;
    let mut report = PlatformReport {
        platform: plan.platform,
        name: profile.name.clone(),
        major,
        pseudo_superuser: None,
        extensions: None,
        limitations: Vec::new(),
    };
    if server.shared_database().is_some() {
        report.limitations.push(format!(
            "the url backend creates no roles and no event triggers on a server it does not own: neither {} nor \
             the extension allowlist was reproduced",
            profile.pseudo_superuser.name
        ));
        return Ok(report);
    }
    let dbname = &server.conn().dbname;
    let failed = |e| {
        ErrorKind::ScenarioInvalid
            .because(format!("cannot give the copy {}'s limits (postgres.platform)", profile.name), e)
    };
    let role = &profile.pseudo_superuser;
    let created = make_pseudo_superuser(admin, role, dbname).await.map_err(failed)?;
    report.pseudo_superuser = Some(PseudoSuperuserReport {
        name: role.name.clone(),
        created,
        attributes: role.attributes.clone(),
        member_of: role.member_of.clone(),
        creates_extensions: role.creates_extensions,
        source: role.origin.source.clone(),
        read: role.origin.read.clone(),
        checked: role.origin.checked,
    });
    let present = catalog::installed_extensions(admin).await.map_err(env)?;
    let untrusted = catalog::untrusted_extensions(admin, &list.names).await.map_err(env)?;
    let g = Guard { profile, major, list, present: &present };
    admin.batch_execute(&guard::create_sql(&g)).await.map_err(failed)?;
    report.extensions = Some(allowlist(plan, list, untrusted));
    report.limitations.extend(limitations(plan, as_role, report.extensions.as_ref()));
    Ok(report)
}

/// Creates the pseudo-superuser (or takes the one the dump's roles made),
/// with the profile's attributes, its predefined roles, and CREATE on the
/// rehearsal database when its members create extensions. Returns whether
/// rehearse created it.
async fn make_pseudo_superuser(
    admin: &Client,
    role: &PseudoSuperuser,
    dbname: &str,
) -> Result<bool, tokio_postgres::Error> {
    let name = quote_ident(&role.name);
    let exists = catalog::role_exists(admin, &role.name).await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    // The attributes are checked against a fixed list when the profile is read (`platform::parse`).
    admin.batch_execute(&format!("{verb} ROLE {name} WITH {}", role.attributes.join(" "))).await?;
    for predefined in &role.member_of {
        // A predefined role of a later major (pg_checkpoint is 15's) may be missing: skip it.
        if catalog::role_exists(admin, predefined).await? {
            admin.batch_execute(&format!("GRANT {} TO {name}", quote_ident(predefined))).await?;
        }
    }
    if role.creates_extensions {
        // A trusted extension needs CREATE on the database ("CREATE EXTENSION",
        // PostgreSQL 15 and 18); the platform lets the pseudo-superuser's members add extensions.
        admin.batch_execute(&format!("GRANT CREATE ON DATABASE {} TO {name}", quote_ident(dbname))).await?;
    }
    Ok(!exists)
}

fn allowlist(plan: &PlatformPlan, list: &ExtensionList, untrusted_offered: Vec<String>) -> AllowlistReport {
    AllowlistReport {
        file: plan.profile.file.to_string(),
        source: list.origin.source.clone(),
        read: list.origin.read.clone(),
        checked: list.origin.checked,
        offered: list.names.len(),
        untrusted_offered,
    }
}

/// What the copy does not reproduce of the platform.
fn limitations(plan: &PlatformPlan, as_role: bool, allowlist: Option<&AllowlistReport>) -> Vec<String> {
    let role = &plan.profile.pseudo_superuser.name;
    let mut out = Vec::new();
    if !as_role {
        out.push(format!(
            "the migrations ran as the copy's superuser (no production.as_role): what {} refuses a non-superuser \
             (untrusted languages, ALTER SYSTEM, COPY ... PROGRAM) was not refused; record the migration role with \
             `rehearse stats --role NAME` and set production.as_role",
            plan.profile.name
        ));
    }
    if let Some(a) = allowlist.filter(|a| !a.untrusted_offered.is_empty()) {
        out.push(format!(
            "{} lets members of {role} create {}, which PostgreSQL does not mark trusted: on the copy only a \
             superuser can, so a migration creating one fails here (42501, saying so) though it would pass there",
            plan.profile.name,
            a.untrusted_offered.join(", ")
        ));
    }
    out.push(format!(
        "the rest of {role}'s powers that need a superuser on vanilla PostgreSQL (e.g. event triggers, the \
         platform's own functions and settings) are not reproduced; extension versions are not checked, only names"
    ));
    out
}
