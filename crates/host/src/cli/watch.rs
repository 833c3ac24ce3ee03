//! `opnet-cli watch`: prints events as they happen until interrupted. The client
//! reconnects by itself and resumes after the last event printed, so a node
//! restart shows as a `disconnected` / `reconnected` pair and nothing is lost or
//! printed twice.

use std::io::Write;

use opnet::client::{Client, ClientError};
use opnet::protocol::{
    SubscribeFrom, FEATURE_MEMPOOL, KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES,
};

use super::args::WatchArgs;
use super::events::item_line;
use super::CliError;

/// The kinds to subscribe to: `--kinds`, else blocks and (when granted) mempool;
/// plus scripthash activity when scripthashes are watched.
pub fn kinds(asked: Option<u8>, granted_features: u64, watching: bool) -> u8 {
    let default = if granted_features & FEATURE_MEMPOOL != 0 {
        KIND_BLOCKS | KIND_MEMPOOL
    } else {
        KIND_BLOCKS
    };
    let kinds = asked.unwrap_or(default);
    if watching {
        kinds | KIND_SCRIPTHASHES
    } else {
        kinds
    }
}

/// Runs `watch`, watching `scripthashes`. Returns only on an error: the stream
/// ends when the connection is lost for good.
pub async fn run(
    client: &Client,
    scripthashes: &[[u8; 32]],
    args: &WatchArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if !scripthashes.is_empty() {
        client.subscribe_scripthashes(scripthashes).await?;
    }
    let kinds = kinds(
        args.kinds,
        client.hello().features,
        !scripthashes.is_empty(),
    );
    let from = args
        .from
        .map_or(SubscribeFrom::Now, SubscribeFrom::AfterSeq);
    let mut stream = client.subscribe(kinds, from).await?;
    while let Some(item) = stream.next().await {
        writeln!(out, "{}", item_line(&item?, args.json))?;
    }
    Err(CliError::Client(ClientError::Closed { closing: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_kinds_follow_the_granted_features() {
        assert_eq!(
            kinds(None, FEATURE_MEMPOOL, false),
            KIND_BLOCKS | KIND_MEMPOOL
        );
        assert_eq!(kinds(None, 0, false), KIND_BLOCKS);
        assert_eq!(
            kinds(Some(KIND_MEMPOOL), 0, true),
            KIND_MEMPOOL | KIND_SCRIPTHASHES
        );
    }
}
