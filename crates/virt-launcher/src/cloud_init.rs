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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
