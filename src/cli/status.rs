//! `status`: the queue, the slots' holders, labs and devices, as tables
//! (from `GET /sessions`, which is public and no sign of life for anyone).

use clap::Args;

use super::ServerArgs;
use neops_remote_lab::client::Result;
use neops_remote_lab::wire::{ClientInfoDto, SessionsDto};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print `GET /sessions` as the server sent it.
    #[arg(long)]
    json: bool,
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let client = args.server.client()?;
    if args.json {
        println!("{}", client.sessions_json().await?);
    } else {
        print!("{}", tables(&client.sessions().await?));
    }
    Ok(())
}

/// The slots, then the queue, each as a table with aligned columns.
fn tables(view: &SessionsDto) -> String {
    let slots = view.slots.iter().map(|slot| {
        let lab = slot.lab.as_ref();
        let devices = lab.map_or_else(String::new, |lab| {
            let names = lab.devices.iter().map(|device| match &device.mgmt {
                Some(mgmt) => format!("{} ({mgmt})", device.name),
                None => device.name.clone(),
            });
            names.collect::<Vec<_>>().join(", ")
        });
        vec![
            slot.slot.to_string(),
            slot.phase.clone(),
            slot.holder.clone().unwrap_or_else(|| "-".into()),
            lab.map_or("-".into(), |lab| lab.topology.clone()),
            lab.map_or("-".into(), |lab| lab.ref_count.to_string()),
            devices,
        ]
    });
    // Sessions have owners (token names) only when the server has auth on.
    let owners = view.sessions.iter().any(|session| session.owner.is_some());
    let queue = view.sessions.iter().map(|session| {
        let mut row = vec![
            session.position.to_string(),
            session.id.clone(),
            format!("{:?}", session.status).to_lowercase(),
            session.slot.map_or("-".into(), |slot| slot.to_string()),
            format!("{:.0}s", session.waiting_seconds),
            session
                .holding_seconds
                .map_or("-".into(), |held| format!("{held:.0}s")),
            session.client.as_ref().map_or("-".into(), who),
        ];
        if owners {
            row.push(session.owner.clone().unwrap_or_else(|| "-".into()));
        }
        row
    });
    let mut out = table(
        &["SLOT", "PHASE", "HOLDER", "TOPOLOGY", "REFS", "DEVICES"],
        slots.collect(),
    );
    out.push('\n');
    if view.sessions.is_empty() {
        out.push_str("No sessions.\n");
    } else {
        let mut header = vec![
            "POS", "SESSION", "STATUS", "SLOT", "WAITED", "HOLDING", "CLIENT",
        ];
        if owners {
            header.push("OWNER");
        }
        out.push_str(&table(&header, queue.collect()));
    }
    out
}

/// `user@host (label)`, as far as known.
fn who(client: &ClientInfoDto) -> String {
    let mut text = match (&client.user, &client.host) {
        (Some(user), Some(host)) => format!("{user}@{host}"),
        (Some(name), None) | (None, Some(name)) => name.clone(),
        (None, None) => String::new(),
    };
    if let Some(label) = &client.label {
        text = format!("{text} ({label})").trim().to_string();
    }
    if text.is_empty() { "-".into() } else { text }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.iter().map(|title| title.to_string()).collect();
    std::iter::once(header)
        .chain(rows)
        .map(|row: Vec<String>| {
            let cells = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"));
            format!("{}\n", cells.collect::<Vec<_>>().join("  ").trim_end())
        })
        .collect()
}
