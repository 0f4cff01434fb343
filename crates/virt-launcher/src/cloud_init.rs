//! The cloud-init NoCloud seed: a FAT volume labelled `cidata` holding `user-data`,
//! `meta-data` and, when given, `network-config`.

use std::io::{self, Read, Seek, Write};

/// What goes on one seed disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    pub user_data: Vec<u8>,
    pub meta_data: String,
    pub network_config: Option<Vec<u8>>,
}

/// The label NoCloud looks for.
pub const VOLUME_LABEL: &[u8; 11] = b"CIDATA     ";

impl SeedFiles {
    /// `meta-data` names the instance by the VMI's UID and the host by the VMI's name.
    pub fn meta_data(instance_id: &str, hostname: &str) -> String {
        format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
    }

    fn files(&self) -> Vec<(&'static str, &[u8])> {
        let mut files = vec![
            ("user-data", self.user_data.as_slice()),
            ("meta-data", self.meta_data.as_bytes()),
        ];
        if let Some(network) = &self.network_config {
            files.push(("network-config", network.as_slice()));
        }
        files
    }

    /// Room for the files twice over plus 1 MiB for the FAT itself, in whole sectors.
    pub fn disk_size(&self) -> u64 {
        let content: u64 = self.files().iter().map(|(_, d)| d.len() as u64).sum();
        (1 << 20) + (content * 2).next_multiple_of(512)
    }
}

/// Formats `disk` (already `disk_size()` long) and writes the files at its root.
pub fn write_seed<D: Read + Write + Seek>(mut disk: D, seed: &SeedFiles) -> io::Result<()> {
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*VOLUME_LABEL),
    )?;
    let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
    {
        let root = fs.root_dir();
        for (name, data) in seed.files() {
            root.create_file(name)?.write_all(data)?;
        }
    }
    fs.unmount()
}

/// Writes a sparse seed file at `path` (replacing an old one).
pub fn create_seed_file(path: &std::path::Path, seed: &SeedFiles) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_len(seed.disk_size())?;
    write_seed(&file, seed)?;
    file.sync_all()
}

/// Adds `keys` (authorized_keys lines from the VMI's `accessCredentials`) to a NoCloud
/// user-data as cloud-config's `ssh_authorized_keys`: an empty user-data becomes a
/// `#cloud-config` with just them; a `#cloud-config` gets them merged into its top-level list
/// (added when it has none). Anything else (a `#!` script, MIME, another format) cannot carry
/// them: the error says why and the user-data stays as it was.
pub fn add_authorized_keys(user_data: &[u8], keys: &[String]) -> Result<Vec<u8>, String> {
    if keys.is_empty() {
        return Ok(user_data.to_vec());
    }
    // JSON strings are YAML double-quoted scalars.
    let items: Vec<String> = keys
        .iter()
        .map(|k| serde_json::to_string(k.trim()).unwrap_or_default())
        .collect();
    let text = std::str::from_utf8(user_data)
        .map_err(|_| "the user-data is not UTF-8 text".to_string())?;
    if text.trim().is_empty() {
        return Ok(block_list("#cloud-config\n".to_string(), &items));
    }
    let first_line = text.lines().next().unwrap_or("").trim_end();
    if first_line.starts_with("#!") {
        return Err(
            "the user-data is a shell script, which cannot carry SSH keys: use a #cloud-config user-data"
                .into(),
        );
    }
    if first_line != "#cloud-config" {
        return Err(
            "the user-data is not #cloud-config (nor empty), so SSH keys cannot be added to it"
                .into(),
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let key_at = lines.iter().position(|l| {
        l.strip_prefix("ssh_authorized_keys")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    let Some(key_at) = key_at else {
        let mut merged = text.to_string();
        if !merged.ends_with('\n') {
            merged.push('\n');
        }
        return Ok(block_list(merged, &items));
    };
    let value = lines[key_at]
        .split_once(':')
        .map(|(_, v)| v)
        .unwrap_or("")
        .trim();
    let value = strip_comment(value);
    let mut out: Vec<String> = lines[..key_at].iter().map(|l| l.to_string()).collect();
    if value.is_empty() {
        // A block list follows: the new items take the indentation of its first item.
        let indent = lines[key_at + 1..]
            .iter()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .filter(|l| l.trim_start().starts_with('-'))
            .map(|l| l[..l.len() - l.trim_start().len()].to_string())
            .unwrap_or_else(|| "  ".to_string());
        out.push(lines[key_at].to_string());
        out.extend(items.iter().map(|item| format!("{indent}- {item}")));
    } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let mut all: Vec<String> = inner
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect();
        all.extend(items);
        out.push(format!("ssh_authorized_keys: [{}]", all.join(", ")));
    } else {
        return Err("the user-data's ssh_authorized_keys is not a list".into());
    }
    out.extend(lines[key_at + 1..].iter().map(|l| l.to_string()));
    let mut merged = out.join("\n");
    merged.push('\n');
    Ok(merged.into_bytes())
}

fn block_list(mut text: String, items: &[String]) -> Vec<u8> {
    text.push_str("ssh_authorized_keys:\n");
    for item in items {
        text.push_str(&format!("  - {item}\n"));
    }
    text.into_bytes()
}

/// A YAML value without its trailing ` # comment`.
fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(at) => value[..at].trim_end(),
        None if value.starts_with('#') => "",
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn authorized_keys_merge_into_cloud_config() {
        let keys = vec![
            "ssh-ed25519 AAAAC3Nz a@b".to_string(),
            "ssh-rsa AAAAB3 c@d".to_string(),
        ];
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            (
                "",
                Ok(
                    "#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nz a@b\"\n  - \"ssh-rsa AAAAB3 c@d\"\n",
                ),
            ),
            (
                "#cloud-config\nhostname: x",
                Ok(
                    "#cloud-config\nhostname: x\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nz a@b\"\n  - \"ssh-rsa AAAAB3 c@d\"\n",
                ),
            ),
            (
                "#cloud-config\nssh_authorized_keys:\n    - old key\npassword: x\n",
                Ok(
                    "#cloud-config\nssh_authorized_keys:\n    - \"ssh-ed25519 AAAAC3Nz a@b\"\n    - \"ssh-rsa AAAAB3 c@d\"\n    - old key\npassword: x\n",
                ),
            ),
            (
                "#cloud-config\nssh_authorized_keys: [old] # mine\n",
                Ok(
                    "#cloud-config\nssh_authorized_keys: [old, \"ssh-ed25519 AAAAC3Nz a@b\", \"ssh-rsa AAAAB3 c@d\"]\n",
                ),
            ),
            (
                "#cloud-config\nssh_authorized_keys: []\n",
                Ok(
                    "#cloud-config\nssh_authorized_keys: [\"ssh-ed25519 AAAAC3Nz a@b\", \"ssh-rsa AAAAB3 c@d\"]\n",
                ),
            ),
            (
                "#cloud-config\nusers:\n  - name: x\n    ssh_authorized_keys:\n      - k\n",
                Ok(
                    "#cloud-config\nusers:\n  - name: x\n    ssh_authorized_keys:\n      - k\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nz a@b\"\n  - \"ssh-rsa AAAAB3 c@d\"\n",
                ),
            ),
            (
                "#!/bin/sh\necho hi\n",
                Err(
                    "the user-data is a shell script, which cannot carry SSH keys: use a #cloud-config user-data",
                ),
            ),
            (
                "Content-Type: multipart/mixed\n",
                Err(
                    "the user-data is not #cloud-config (nor empty), so SSH keys cannot be added to it",
                ),
            ),
            (
                "#cloud-config\nssh_authorized_keys: one\n",
                Err("the user-data's ssh_authorized_keys is not a list"),
            ),
        ];
        for (user_data, want) in cases {
            let got = add_authorized_keys(user_data.as_bytes(), &keys)
                .map(|b| String::from_utf8(b).unwrap());
            assert_eq!(
                got,
                want.map(String::from).map_err(String::from),
                "{user_data:?}"
            );
        }
        assert_eq!(
            add_authorized_keys(b"#!/bin/sh\n", &[]),
            Ok(b"#!/bin/sh\n".to_vec())
        );
    }

    fn read_back(image: Vec<u8>) -> (String, Vec<(String, Vec<u8>)>) {
        let fs = fatfs::FileSystem::new(Cursor::new(image), fatfs::FsOptions::new()).unwrap();
        let mut files = Vec::new();
        for entry in fs.root_dir().iter() {
            let entry = entry.unwrap();
            let mut data = Vec::new();
            entry.to_file().read_to_end(&mut data).unwrap();
            files.push((entry.file_name(), data));
        }
        (fs.volume_label(), files)
    }

    #[test]
    fn the_seed_reads_back_with_its_label_and_files() {
        let seed = SeedFiles {
            user_data: b"#cloud-config\nhostname: x\n".to_vec(),
            meta_data: SeedFiles::meta_data("uid-1", "vmi-a"),
            network_config: None,
        };
        let mut image = Cursor::new(vec![0u8; seed.disk_size() as usize]);
        write_seed(&mut image, &seed).unwrap();
        let (label, files) = read_back(image.into_inner());
        assert_eq!(label.trim_end(), "CIDATA");
        assert_eq!(
            files,
            vec![
                ("user-data".to_string(), seed.user_data.clone()),
                (
                    "meta-data".to_string(),
                    b"instance-id: uid-1\nlocal-hostname: vmi-a\n".to_vec()
                ),
            ]
        );
    }

    #[test]
    fn network_config_is_written_when_given_and_large_data_fits() {
        let seed = SeedFiles {
            user_data: vec![b'x'; 3 << 20],
            meta_data: SeedFiles::meta_data("u", "n"),
            network_config: Some(b"version: 2\n".to_vec()),
        };
        let mut image = Cursor::new(vec![0u8; seed.disk_size() as usize]);
        write_seed(&mut image, &seed).unwrap();
        let (_, files) = read_back(image.into_inner());
        let names: Vec<_> = files.iter().map(|(n, d)| (n.as_str(), d.len())).collect();
        assert_eq!(
            names,
            vec![
                ("user-data", 3 << 20),
                ("meta-data", 33),
                ("network-config", 11)
            ]
        );
    }
}
