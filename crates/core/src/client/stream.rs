//! Paging through a scripthash's UTXOs (QUERY_UTXOS_PAGINATED, docs/PROTOCOL.md
//! §6.2) at the caller's pace: a page is requested only when the caller asks for
//! one, except that the next page may be requested while the caller works on the
//! current one (prefetch), so the round trip overlaps with the caller's work. At
//! most two pages exist at once, whatever the number of UTXOs.

use std::collections::VecDeque;

use super::connection::PendingReply;
use super::requests::page_of;
use super::{Client, ClientError};
use crate::protocol::{BlockRef, Cursor, UtxoEntry, UtxoPage, UtxoQuery};

enum State {
    /// Nothing requested yet.
    Start,
    /// The next page starts after this cursor; not requested yet.
    Next(Cursor),
    /// The next page is on its way (prefetched).
    InFlight(PendingReply),
    /// Prefetching failed; reported when the page is asked for.
    Failed(ClientError),
    /// Every page was returned, or an error was.
    Done,
}

/// The pages (or entries) of one UTXO query, following cursors until the server
/// says there is no more. Made by [`Client::utxo_stream`].
///
/// Pages are not a snapshot (§6.2): if a block lands between two pages, later
/// pages reflect it. Nothing is repeated and nothing that stayed unspent is
/// skipped; [`UtxoStream::tip_changed`] tells whether that happened.
pub struct UtxoStream {
    client: Client,
    query: UtxoQuery,
    prefetch: bool,
    max_entries: Option<u64>,
    returned: u64,
    state: State,
    /// The cursor the last page was requested with, to catch a server that never
    /// advances.
    last_cursor: Option<Cursor>,
    buffer: VecDeque<UtxoEntry>,
    script: Vec<u8>,
    first_tip: Option<BlockRef>,
    last_tip: Option<BlockRef>,
    pages: u64,
}

impl UtxoStream {
    pub(crate) fn new(client: Client, query: UtxoQuery) -> UtxoStream {
        UtxoStream {
            client,
            query,
            prefetch: true,
            max_entries: None,
            returned: 0,
            state: State::Start,
            last_cursor: None,
            buffer: VecDeque::new(),
            script: Vec::new(),
            first_tip: None,
            last_tip: None,
            pages: 0,
        }
    }

    /// Whether to request page N+1 as soon as page N arrives (the default). Off,
    /// each page is requested only when asked for: one page in memory, one round
    /// trip per page.
    pub fn prefetch(mut self, on: bool) -> UtxoStream {
        self.prefetch = on;
        self
    }

    /// Stops after `n` entries in all, asking the server for no more than that
    /// (the last page is sized to what is left).
    pub fn max_entries(mut self, n: u64) -> UtxoStream {
        self.max_entries = Some(n);
        self
    }

    fn remaining(&self) -> Option<u64> {
        self.max_entries.map(|m| m.saturating_sub(self.returned))
    }

    /// The query with the page size for the next request.
    fn page_query(&self) -> UtxoQuery {
        let mut q = self.query.clone();
        if let Some(remaining) = self.remaining() {
            let page = if q.limit == 0 {
                self.client.hello().max_results
            } else {
                q.limit
            };
            if remaining < u64::from(page) {
                q.limit = remaining as u32;
            }
        }
        q
    }

    async fn request(&mut self, cursor: Option<Cursor>) -> Result<PendingReply, ClientError> {
        if cursor.is_some() && cursor == self.last_cursor {
            return Err(ClientError::Protocol(
                "the server returned the same cursor twice; paging would never end".into(),
            ));
        }
        self.last_cursor = cursor.clone();
        let q = self.page_query();
        self.client.start_page(q, cursor).await
    }

    /// The next page; `None` after the last one (or after an error was returned).
    pub async fn next_page(&mut self) -> Option<Result<UtxoPage, ClientError>> {
        if self.remaining() == Some(0) {
            self.state = State::Done;
        }
        let pending = match std::mem::replace(&mut self.state, State::Done) {
            State::Done => return None,
            State::Failed(e) => return Some(Err(e)),
            State::InFlight(p) => p,
            State::Start => match self.request(None).await {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            },
            State::Next(cursor) => match self.request(Some(cursor)).await {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            },
        };
        let mut page = match pending.wait().await.and_then(page_of) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        if let Some(remaining) = self.remaining() {
            page.entries
                .truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        let count = page.entries.len() as u64;
        self.returned += count;
        self.pages += 1;
        if self.script.is_empty() && !page.script.is_empty() {
            self.script = page.script.clone();
        }
        self.first_tip.get_or_insert(page.tip);
        self.last_tip = Some(page.tip);
        if page.more && self.remaining() != Some(0) {
            let Some(cursor) = page.cursor.clone() else {
                return Some(Err(ClientError::Protocol(
                    "a page with more = 1 and no cursor".into(),
                )));
            };
            self.state = if self.prefetch {
                // `returned` already counts this page, so the prefetch is sized to
                // what is left after it.
                match self.request(Some(cursor)).await {
                    Ok(p) => State::InFlight(p),
                    Err(e) => State::Failed(e),
                }
            } else {
                State::Next(cursor)
            };
        }
        Some(Ok(page))
    }

    /// The next entry, fetching pages as needed; `None` after the last.
    pub async fn next_entry(&mut self) -> Option<Result<UtxoEntry, ClientError>> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                return Some(Ok(entry));
            }
            match self.next_page().await? {
                Ok(page) => self.buffer.extend(page.entries),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The scriptPubKey the entries pay (empty until a page with entries came).
    pub fn script(&self) -> &[u8] {
        &self.script
    }

    /// The index tip the last page was read at.
    pub fn tip(&self) -> Option<BlockRef> {
        self.last_tip
    }

    /// True when pages came from different index states (a block landed while
    /// paging, §6.2).
    pub fn tip_changed(&self) -> bool {
        self.first_tip != self.last_tip
    }

    /// Pages received so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Entries returned so far.
    pub fn returned(&self) -> u64 {
        self.returned
    }
}
