//! `elasticrds generate man|completions SHELL`: the man page (roff) and shell completions,
//! generated from the clap definitions of [`super::Cli`], so they never drift from the
//! commands. Used by scripts/build-deb.sh; hidden from `--help`.

use super::{Cli, CliError, CliResult};
use clap::{Args, CommandFactory, Subcommand};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// The man page elasticrds(1), as roff, on stdout.
    Man,
    /// Completions for a shell, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn run(a: GenerateArgs) -> CliResult {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    match a.what {
        What::Man => clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| CliError::runtime(format!("cannot write the man page: {e}"))),
        What::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "elasticrds", &mut out);
            Ok(())
        }
    }
}
