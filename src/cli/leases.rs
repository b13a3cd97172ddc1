//! `elasticrds leases --lease-table T`: who holds which cluster and until when, and the live
//! copies; `elasticrds lease-table create T`: the DynamoDB table the copies share (on-demand
//! billing, TTL), for those who do not manage it with their infrastructure tool.

use super::{print_json, CliError, CliResult, Output};
use crate::adapters::dynamodb::DynamoLeases;
use crate::core::lease::LeaseRecord;
use crate::ports::{Clock, LeaseStore, SystemClock};
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// The lease table the copies share (`run --lease-table`).
    #[arg(long, value_name = "TABLE")]
    pub lease_table: String,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct LeaseTableArgs {
    #[command(subcommand)]
    pub command: LeaseTableCommand,
}

#[derive(Debug, Subcommand)]
pub enum LeaseTableCommand {
    /// Create the table: key `pk` (string), on-demand billing, TTL on `ttl`.
    Create {
        /// The table's name.
        table: String,
        /// Say what would be created; create nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Serialize)]
struct LeasesReport {
    table: String,
    at: chrono::DateTime<chrono::Utc>,
    leases: Vec<LeaseRecord>,
    copies: Vec<LeaseRecord>,
}

async fn store(table: &str) -> Result<DynamoLeases, CliError> {
    crate::adapters::aws::check_environment()
        .await
        .map_err(|e| CliError::input(e.to_string()))?;
    let cfg = crate::adapters::aws::sdk_config().await;
    Ok(DynamoLeases::new(
        aws_sdk_dynamodb::Client::new(&cfg),
        table,
    ))
}

pub async fn leases(a: LeasesArgs) -> CliResult {
    let read = store(&a.lease_table).await?.read_all().await;
    let (mut leases, mut copies) =
        read.map_err(|e| CliError::runtime(format!("lease table {}: {e}", a.lease_table)))?;
    leases.sort_by(|x, y| x.key.cmp(&y.key));
    copies.sort_by(|x, y| x.key.cmp(&y.key));
    let r = LeasesReport {
        table: a.lease_table,
        at: SystemClock.now(),
        leases,
        copies,
    };
    match a.output {
        Output::Json => print_json(&r),
        Output::Text => {
            print!("{}", text(&r));
            Ok(())
        }
    }
}

fn text(r: &LeasesReport) -> String {
    let mut s = format!("{}: {} lease(s)\n", r.table, r.leases.len());
    for l in &r.leases {
        let state = if l.owner.is_empty() {
            "free".to_string()
        } else if l.expires <= r.at {
            format!("expired (was {})", l.owner)
        } else {
            format!("held by {} until {}", l.owner, l.expires.to_rfc3339())
        };
        s.push_str(&format!(
            "  {:<24} {state} (counter {})\n",
            l.key, l.counter
        ));
    }
    s.push_str("copies:\n");
    for c in &r.copies {
        let live = if c.expires > r.at { "live" } else { "gone" };
        s.push_str(&format!(
            "  {:<24} {live}, heartbeat until {}\n",
            c.key,
            c.expires.to_rfc3339()
        ));
    }
    s
}

pub async fn lease_table(a: LeaseTableArgs) -> CliResult {
    match a.command {
        LeaseTableCommand::Create { table, dry_run } => {
            if table.len() < 3
                || table.len() > 255
                || !table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(CliError::input(format!(
                    "{table:?}: a DynamoDB table name has 3 to 255 letters, digits and _ . -"
                )));
            }
            if dry_run {
                println!(
                    "dry run: would create table {table} (key pk, on-demand billing, TTL on ttl)"
                );
                return Ok(());
            }
            store(&table).await?.create_table().await?;
            println!("created table {table} (key pk, on-demand billing, TTL on ttl)");
            Ok(())
        }
    }
}
