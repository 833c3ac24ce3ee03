//! `bitcoin.conf`, as far as the loader needs it: `plugin=` lines and the
//! arguments plugins read (`opnetdir=...`), global or in the network's section.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use opnet::Network;

/// What a bitcoin.conf says for one network.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Conf {
    pub plugins: Vec<PathBuf>,
    pub args: HashMap<String, String>,
}

/// Bitcoin Core's section name for a network.
fn section(network: Network) -> &'static str {
    match network {
        Network::Main => "main",
        Network::Testnet3 => "test",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// Parses `text`: `key=value` lines, `#` comments, `[section]` headers (lines in
/// another network's section are ignored, as bitcoind does).
pub fn parse(text: &str, network: Network) -> Conf {
    let mut conf = Conf::default();
    let mut in_scope = true;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_scope = name.trim() == section(network);
            continue;
        }
        if !in_scope {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, "1"));
        let (key, value) = (key.trim(), value.trim());
        // `regtest.opnetdir=...` is a network-scoped key.
        let key = match key.split_once('.') {
            Some((net, k)) if net == section(network) => k,
            Some(_) => continue,
            None => key,
        };
        if key == "plugin" {
            conf.plugins.push(PathBuf::from(value));
        } else {
            conf.args.insert(key.to_string(), value.to_string());
        }
    }
    conf
}

/// Reads `dir/bitcoin.conf` if there is one.
pub fn read(dir: &Path, network: Network) -> Result<Conf, String> {
    let path = dir.join("bitcoin.conf");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text, network)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Conf::default()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_lines_and_sections() {
        let text = "# comment\nplugin=/a.so\nopnetundodepth = 7 # seven\n[main]\nplugin=/main.so\n[regtest]\nplugin=/r.so\nopnetdir=/idx\nrest\nmain.opnetdbcache=1\nregtest.opnetreaders=3\n";
        let c = parse(text, Network::Regtest);
        assert_eq!(
            c.plugins,
            vec![PathBuf::from("/a.so"), PathBuf::from("/r.so")]
        );
        assert_eq!(c.args.get("opnetundodepth").map(String::as_str), Some("7"));
        assert_eq!(c.args.get("opnetdir").map(String::as_str), Some("/idx"));
        assert_eq!(c.args.get("rest").map(String::as_str), Some("1"));
        assert_eq!(c.args.get("opnetreaders").map(String::as_str), Some("3"));
        assert_eq!(c.args.get("opnetdbcache"), None);
        let m = parse(text, Network::Main);
        assert_eq!(
            m.plugins,
            vec![PathBuf::from("/a.so"), PathBuf::from("/main.so")]
        );
    }
}
