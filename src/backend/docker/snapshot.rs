//! The snapshot cache's images: committing a stopped container, starting from one, and the images' identity and removal.

use super::*;

impl DockerContainer {
    /// Starts a container of a snapshot cache image, whose data dir already
    /// holds the restored database and the cached superuser password, and
    /// replaces that password by a new random one at once.
    pub async fn start_from_snapshot(
        plan: &DockerPlan,
        image_id: &str,
        cached_password: Secret,
        cancel: &CancellationToken,
    ) -> Result<DockerContainer> {
        let mut container = DockerContainer::start_image(plan, image_id, Some(cached_password), cancel).await?;
        // The new password is the container's POSTGRES_PASSWORD already (what --keep points to).
        db::set_password(&container.conn, &container.env_password, cancel).await?;
        container.conn.password = container.env_password.clone();
        Ok(container)
    }

    /// Saves the stopped container as a snapshot cache image tagged with
    /// `key`, then starts it again. Returns the image's id and size. The
    /// image keeps no password: the cached one is in the cache manifest.
    pub async fn commit_snapshot(&mut self, key: &str, cancel: &CancellationToken) -> Result<(String, u64)> {
        let tag = format!("{SNAPSHOT_REPOSITORY}:{key}");
        // An image under this tag that no complete entry names (a run that
        // died between commit and seal, or an entry found unusable): replaced below.
        let replaced = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).run(cancel).await.ok();
        self.stop_fast(cancel).await?;
        let committed = docker(&[
            "commit",
            "--change",
            "ENV POSTGRES_PASSWORD=",
            "--change",
            &format!("LABEL {LABEL_SNAPSHOT}={key}"),
            self.id(),
            &tag,
        ])
        .deadline(Duration::from_secs(3600))
        .run(cancel)
        .await;
        // Started again whatever the commit did: the rehearsal goes on.
        self.start_again(cancel).await?;
        let id = committed.map_err(|e| child_error("cannot commit the container as a snapshot cache image", e))?;
        let id = id.stdout.trim().to_string();
        if let Some(old) = replaced.map(|out| out.stdout.trim().to_string()).filter(|old| *old != id) {
            let _ = remove_snapshot_image(&old).await;
        }
        // The entry's size is the snapshot's own layer: the image's size less its base image's.
        let sizes = docker(&["image", "inspect", "--format", "{{.Size}}", &id, &self.image])
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot read the snapshot image's size", e))?;
        let sizes: Vec<u64> = sizes.stdout.lines().filter_map(|l| l.trim().parse().ok()).collect();
        Ok((id, sizes.first().zip(sizes.get(1)).map_or(0, |(image, base)| image.saturating_sub(*base))))
    }

    pub(super) async fn start_again(&self, cancel: &CancellationToken) -> Result<()> {
        docker(&["start", self.id()])
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot start the container again", e))?;
        db::connect_when_ready(&self.conn, "postgres", "rehearse", Duration::from_secs(60), cancel).await.map(|_| ())
    }
}

/// What identifies `image` for the snapshot cache key: its id (pulled
/// first when it is not on this machine), so a rebuilt or re-pulled image
/// never reuses a snapshot made with another.
pub async fn image_identity(image: &str, cancel: &CancellationToken) -> Result<String> {
    ensure_image(image, cancel).await?;
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .run(cancel)
        .await
        .map_err(|e| child_error(&format!("cannot inspect the docker image {image}"), e))?;
    Ok(format!("docker image {image} {}", out.stdout.trim()))
}

/// Whether the snapshot image `id` is still on this machine and holds `key`
/// (an image removed by `docker image prune`, or re-tagged, is not used).
pub async fn snapshot_image_holds(id: &str, key: &str, cancel: &CancellationToken) -> bool {
    let format = format!("{{{{index .Config.Labels \"{LABEL_SNAPSHOT}\"}}}}");
    match docker(&["image", "inspect", "--format", &format, id]).run(cancel).await {
        Ok(out) => out.stdout.trim() == key,
        Err(_) => false,
    }
}

/// Removes a snapshot cache image; an image already gone is not an error.
pub async fn remove_snapshot_image(id: &str) -> Result<()> {
    match docker(&["image", "rm", "--force", id]).run(&CancellationToken::new()).await {
        Ok(_) => Ok(()),
        Err(e) if e.stderr().is_some_and(|s| s.contains("No such image")) => Ok(()),
        Err(e) => Err(child_error(
            &format!("cannot remove the snapshot image {}: remove it with `docker image rm {id}`", short(id)),
            e,
        )),
    }
}
