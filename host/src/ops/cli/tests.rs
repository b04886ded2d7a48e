use clap::CommandFactory;
use clap::error::ErrorKind;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("trellis").chain(args.iter().copied()))
}

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_subcommand_parses_its_options() {
    let cli = parse(&[
        "run",
        "-c",
        "host.yaml",
        "--kubeconfig",
        "kc",
        "--context",
        "prod",
    ])
    .unwrap();
    let Command::Run(run) = cli.command else {
        panic!("not run")
    };
    assert_eq!(run.config, PathBuf::from("host.yaml"));
    assert_eq!(run.kubeconfig, Some(PathBuf::from("kc")));
    assert_eq!(run.context.as_deref(), Some("prod"));
    assert_eq!(cli.log_format, LogFormat::Human);

    let cli = parse(&[
        "dev",
        "--port",
        "8080",
        "--fixtures",
        "f",
        "--log-format",
        "json",
    ])
    .unwrap();
    let Command::Dev(dev) = cli.command else {
        panic!("not dev")
    };
    assert_eq!(dev.port, Some(8080));
    assert_eq!(dev.fixtures, Some(PathBuf::from("f")));
    assert_eq!(dev.config, None);
    assert_eq!(dev.state_dir, PathBuf::from(".trellis-dev"));
    assert_eq!(dev.progress, ProgressMode::Auto);
    assert_eq!(cli.log_format, LogFormat::Json);

    let cli = parse(&["--log-format", "json", "check", "--config", "x.yaml"]).unwrap();
    assert!(
        matches!(cli.command, Command::Check(CheckArgs { ref config }) if config == &PathBuf::from("x.yaml"))
    );

    let cli = parse(&[
        "rbac",
        "-c",
        "x.yaml",
        "--namespace",
        "ops",
        "--service-account",
        "t",
    ])
    .unwrap();
    let Command::Rbac(rbac) = cli.command else {
        panic!("not rbac")
    };
    assert_eq!(
        (rbac.namespace.as_str(), rbac.service_account.as_str()),
        ("ops", "t")
    );
    let Command::Rbac(rbac) = parse(&["rbac", "-c", "x.yaml"]).unwrap().command else {
        panic!("not rbac")
    };
    assert_eq!(
        (rbac.namespace.as_str(), rbac.service_account.as_str()),
        ("trellis-system", "trellis")
    );
}

#[test]
fn usage_mistakes_are_clap_errors_with_exit_code_2() {
    for (args, kind) in [
        (&["run"][..], ErrorKind::MissingRequiredArgument),
        (&["check"][..], ErrorKind::MissingRequiredArgument),
        (&["dev", "--port", "http"][..], ErrorKind::ValueValidation),
        (&["dev", "--port", "70000"][..], ErrorKind::ValueValidation),
        (&["--log-format", "xml", "dev"][..], ErrorKind::InvalidValue),
        (&["serve"][..], ErrorKind::InvalidSubcommand),
        (&["dev", "--bogus"][..], ErrorKind::UnknownArgument),
    ] {
        let error = parse(args).unwrap_err();
        assert_eq!(error.kind(), kind, "{args:?}: {error}");
        assert_eq!(error.exit_code(), i32::from(Exit::Usage.code()), "{args:?}");
    }
    // No subcommand at all: the help, as an error (exit 2).
    let error = parse(&[]).unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn help_exists_everywhere_and_documents_exit_codes() {
    let help = Cli::command().render_long_help().to_string();
    for needle in [
        "run",
        "dev",
        "check",
        "rbac",
        "--log-format",
        "Exit codes: 0 success, 1 runtime error, 2 usage",
    ] {
        assert!(
            help.contains(needle),
            "top-level help lacks {needle:?}:\n{help}"
        );
    }
    for sub in ["run", "dev", "check", "rbac"] {
        let mut command = Cli::command();
        command.build(); // propagates global options to subcommands, as parsing does
        let help = command
            .find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.len() > 200, "{sub}: {help}");
        assert!(
            help.contains("--log-format"),
            "{sub}: global option missing"
        );
    }
}

#[test]
fn errors_pick_their_exit_code() {
    assert_eq!(CliError::LeadershipLost.exit(), Exit::Runtime);
    assert_eq!(CliError::Invalid("x".into()).exit(), Exit::Usage);
    assert_eq!(CliError::Cluster("x".into()).exit(), Exit::Runtime);
    let usage = CliError::Dev(crate::ops::dev::DevError::State(
        crate::ops::dev::StateError::Config {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        },
    ));
    assert_eq!(usage.exit(), Exit::Usage);
    assert_eq!(Exit::Ok.code(), 0);
}
