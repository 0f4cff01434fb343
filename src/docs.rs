//! The generated files committed with the sources: shell completions in `completions/` and man
//! pages in `man/`. A test fails when they are stale; regenerate them with
//! `VIRTCTL_REGENERATE_DOCS=1 cargo test -p virtctl --bin virtctl docs`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Every generated file: (path relative to the repository root, contents).
pub fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "virtctl.bash"),
        (Shell::Zsh, "_virtctl"),
        (Shell::Fish, "virtctl.fish"),
        (Shell::PowerShell, "_virtctl.ps1"),
        (Shell::Elvish, "virtctl.elv"),
    ] {
        let mut buf = Vec::new();
        let settings = crate::settings::CompletionSettings {
            bin: "virtctl",
            shell,
            descriptions: true,
        };
        crate::commands::completion::run(&settings, &mut buf).expect("every shell has a script");
        out.push((Path::new("completions").join(file), buf));
    }
    let cmd = crate::cli::command(false);
    out.push((Path::new("man").join("virtctl.1"), render(cmd.clone())));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("virtctl-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "));
        out.push((Path::new("man").join(format!("{name}.1")), render(page)));
    }
    out
}

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .expect("rendering to memory cannot fail");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_completions_and_man_pages_are_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let regenerate = std::env::var_os("VIRTCTL_REGENERATE_DOCS").is_some();
        let mut stale = Vec::new();
        for (rel, contents) in generated() {
            let path = root.join(&rel);
            if regenerate {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &contents).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(contents.as_slice()) {
                stale.push(rel.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale generated files {stale:?}: run `VIRTCTL_REGENERATE_DOCS=1 cargo test -p virtctl --bin virtctl docs`"
        );
    }
}
