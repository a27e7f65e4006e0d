//! `shoal registry ...`: tenants, devices and credentials through the device registry's HTTP API (the shape of
//! Eclipse Hono's Device Registry Management API, served on the admin listener). What the API answers is what
//! the command prints: the JSON of a read, or one line per change.

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Value};

use super::Client;

/// One registry operation.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RegistryCommand {
    /// Create a tenant.
    CreateTenant {
        tenant: String,
        /// Created disabled: its devices cannot connect.
        #[arg(long)]
        disabled: bool,
    },
    /// Show a tenant (JSON).
    GetTenant { tenant: String },
    /// Delete a tenant with its devices and credentials.
    DeleteTenant { tenant: String },
    /// Register a device in a tenant.
    CreateDevice {
        tenant: String,
        device: String,
        /// Gateway devices that may publish and subscribe for this one (comma-separated).
        #[arg(long, value_delimiter = ',')]
        via: Vec<String>,
        #[arg(long)]
        disabled: bool,
    },
    /// Show a device (JSON).
    GetDevice { tenant: String, device: String },
    /// Delete a device with its credentials.
    DeleteDevice { tenant: String, device: String },
    /// Give a device a password (replaces its credentials): it then connects as `AUTH_ID@TENANT`. The server
    /// stores only a bcrypt hash.
    SetPassword {
        tenant: String,
        device: String,
        /// The name the device logs in with (default: the device id).
        #[arg(long)]
        auth_id: Option<String>,
        /// The password (or set SHOAL_DEVICE_PASSWORD, to keep it out of the shell history).
        #[arg(long, env = "SHOAL_DEVICE_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Show a device's credentials (JSON; secrets are never shown).
    GetCredentials { tenant: String, device: String },
}

/// Runs `command` against the admin API at `server`, printing to `out`.
pub fn run(server: &str, command: RegistryCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let client = Client::new(server);
    let seg = |s: &str| -> anyhow::Result<String> {
        // Ids travel in the path: refuse what would change the path rather than escape it silently.
        anyhow::ensure!(
            !s.is_empty() && !s.contains(['/', '?', '#', '%']),
            "`{s}` is not a valid id (no '/', '?', '#' or '%')"
        );
        Ok(s.to_owned())
    };
    match command {
        RegistryCommand::CreateTenant { tenant, disabled } => {
            let t = seg(&tenant)?;
            let body = json!({ "enabled": !disabled });
            client
                .send_json("POST", &format!("/v1/tenants/{t}"), Some(body))?
                .json_ok()?;
            writeln!(out, "tenant {t} created")?;
        }
        RegistryCommand::GetTenant { tenant } => {
            let v = client.send_json("GET", &format!("/v1/tenants/{}", seg(&tenant)?), None)?;
            print_json(out, v.json_ok()?)?;
        }
        RegistryCommand::DeleteTenant { tenant } => {
            let t = seg(&tenant)?;
            client
                .send_json("DELETE", &format!("/v1/tenants/{t}"), None)?
                .json_ok()?;
            writeln!(out, "tenant {t} deleted")?;
        }
        RegistryCommand::CreateDevice {
            tenant,
            device,
            via,
            disabled,
        } => {
            let (t, d) = (seg(&tenant)?, seg(&device)?);
            let mut body = json!({ "enabled": !disabled });
            if !via.is_empty() {
                body["via"] = json!(via);
            }
            let path = format!("/v1/devices/{t}/{d}");
            client.send_json("POST", &path, Some(body))?.json_ok()?;
            writeln!(out, "device {t}/{d} created")?;
        }
        RegistryCommand::GetDevice { tenant, device } => {
            let path = format!("/v1/devices/{}/{}", seg(&tenant)?, seg(&device)?);
            print_json(out, client.send_json("GET", &path, None)?.json_ok()?)?;
        }
        RegistryCommand::DeleteDevice { tenant, device } => {
            let (t, d) = (seg(&tenant)?, seg(&device)?);
            let path = format!("/v1/devices/{t}/{d}");
            client.send_json("DELETE", &path, None)?.json_ok()?;
            writeln!(out, "device {t}/{d} deleted")?;
        }
        RegistryCommand::SetPassword {
            tenant,
            device,
            auth_id,
            password,
        } => {
            let (t, d) = (seg(&tenant)?, seg(&device)?);
            let auth_id = auth_id.unwrap_or_else(|| d.clone());
            let body = json!([{
                "type": "hashed-password",
                "auth-id": auth_id,
                "secrets": [{ "pwd-plain": password }],
            }]);
            let path = format!("/v1/credentials/{t}/{d}");
            client.send_json("PUT", &path, Some(body))?.json_ok()?;
            writeln!(out, "device {t}/{d} logs in as {auth_id}@{t}")?;
        }
        RegistryCommand::GetCredentials { tenant, device } => {
            let path = format!("/v1/credentials/{}/{}", seg(&tenant)?, seg(&device)?);
            print_json(out, client.send_json("GET", &path, None)?.json_ok()?)?;
        }
    }
    Ok(())
}

fn print_json(out: &mut dyn Write, value: Value) -> anyhow::Result<()> {
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&value).context("printing JSON")?
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
