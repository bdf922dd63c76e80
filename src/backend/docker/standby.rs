//! A streaming hot standby of the throwaway server, in a container of its own.

use super::*;

impl DockerContainer {
    /// Starts a streaming hot standby of this container's server in a
    /// container of its own that shares this one's network: `pg_basebackup
    /// -X stream -R` over 127.0.0.1, then the server on port 5433 (published
    /// when this container was created, `DockerPlan::standby`) with the
    /// primary's settings, `settings` and `hot_standby = on`. It carries this
    /// run's labels, so every cleanup path that finds the primary finds it.
    pub async fn start_standby(
        &self,
        plan: &DockerPlan,
        settings: &[(String, String)],
        cancel: &CancellationToken,
    ) -> Result<DockerContainer> {
        let Some(port) = self.standby_port else {
            return Err(Error::environment("the container was created without a port for a standby"));
        };
        let mut standby = DockerContainer {
            id: None,
            run: self.run.clone(),
            conn: ConnInfo { port, ..self.conn.clone() },
            env_password: self.conn.password.clone(),
            image: self.image.clone(),
            standby_port: None,
            data_dir: STANDBY_DIR,
            done: false,
        };
        let script = format!(
            "set -e; pg_basebackup -D {STANDBY_DIR} -X stream -R --checkpoint=fast --no-sync -h 127.0.0.1 -p 5432 \
             -U {SUPERUSER}; exec postgres -D {STANDBY_DIR} -p {STANDBY_PORT} -k /tmp \"$@\""
        );
        let mut args: Vec<String> = vec!["create".into()];
        args.extend(self.labels());
        args.extend([
            "--network".into(),
            format!("container:{}", self.id()),
            "--user".into(),
            "postgres".into(),
            "--entrypoint".into(),
            "bash".into(),
            "--env".into(),
            "PGPASSWORD".into(),
            "--env".into(),
            "PGAPPNAME=rehearse-standby".into(),
            "--shm-size".into(),
            "1g".into(),
            self.image.clone(),
            "-c".into(),
            script,
            "standby".into(),
        ]);
        let mut server: Vec<(String, String)> = plan.settings.clone();
        server.extend(settings.iter().cloned());
        server.push(("hot_standby".into(), "on".into()));
        args.extend(server_args(&server));
        let out = ChildCommand::new("docker")
            .args(&args)
            .env("PGPASSWORD", self.conn.password.expose())
            .deadline(Duration::from_secs(60))
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot create the standby's container (observe.standby)", e))?;
        // From here on, an error drops `standby`, whose Drop removes it.
        standby.id = Some(out.stdout.trim().to_string());
        docker(&["start", standby.id()])
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot start the standby's container", e))?;
        standby.wait_standby(cancel).await?;
        Ok(standby)
    }

    /// Waits until the standby accepts connections (a hot standby logs
    /// "ready to accept read-only connections", not the primary's line),
    /// or its container stops: a base backup of a big database takes a while.
    pub(super) async fn wait_standby(&self, cancel: &CancellationToken) -> Result<()> {
        let started = Instant::now();
        loop {
            if db::connect(&self.conn, "postgres", "rehearse").await.is_ok() {
                return Ok(());
            }
            let state = docker(&["inspect", "--format", "{{.State.Status}}", self.id()])
                .run(cancel)
                .await
                .map_err(|e| child_error("cannot inspect the standby's container", e))?;
            let running = state.stdout.trim() == "running";
            if !running || started.elapsed() > Duration::from_secs(6 * 3600) {
                let logs = self.logs(cancel).await.unwrap_or_default();
                return Err(ErrorKind::ServerStartFailed.error(format!(
                    "the standby in container {} {}; its log ends with:\n{}",
                    short(self.id()),
                    if running { "did not accept connections within 6 hours" } else { "stopped during start-up" },
                    last_lines(&logs, 15)
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            }
        }
    }
}
