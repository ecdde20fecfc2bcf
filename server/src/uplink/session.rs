//! One agent's session: offers, chunks, seals and reports in, and the
//! answers of the group commit out.

use super::*;

/// A page handed to the group commit: its ids, and the committer's answer.
pub(super) type Committing = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (Uuid, Uuid, Result<CommitResult, RecvError>)>
            + Send
            + Sync,
    >,
>;

pub(super) struct Session {
    pub(super) state: AppState,
    pub(super) agent: Agent,
    /// Pages with bytes in the shared partials, to drop once stored.
    pub(super) shared_ids: HashSet<Uuid>,
    pub(super) uploads: HashMap<Uuid, Upload>,
    pub(super) committing: FuturesUnordered<Committing>,
    pub(super) committing_ids: HashSet<Uuid>,
    /// The chunk whose bytes are arriving, if it was accepted.
    pub(super) receiving: Option<Receiving>,
}

/// A chunk being written into its page's partial file. Its bytes are written
/// as they arrive, before its CRC-32 can be checked, so this remembers how to
/// take them back.
pub(super) struct Receiving {
    pub(super) capture_id: Uuid,
    /// Where the chunk begins in the partial file.
    pub(super) start: u64,
    pub(super) len: u64,
    /// The page's hash up to `start`.
    pub(super) hash_before: Sha256,
}

impl Receiving {
    /// Takes the chunk's bytes back out of the partial file and its hash.
    pub(super) fn undo(self, sink: &mut PartialSink, path: &Path) -> anyhow::Result<()> {
        sink.file
            .set_len(self.start)
            .and_then(|()| sink.file.seek(std::io::SeekFrom::Start(self.start)))
            .with_context(|| format!("cutting {} back to {} bytes", path.display(), self.start))?;
        sink.hasher = self.hash_before;
        Ok(())
    }
}

impl Session {
    pub(super) fn new(state: AppState, agent: Agent) -> Session {
        Session {
            state,
            agent,
            shared_ids: HashSet::new(),
            uploads: HashMap::new(),
            committing: FuturesUnordered::new(),
            committing_ids: HashSet::new(),
            receiving: None,
        }
    }

    /// Serves the connection, then winds down whatever way it ended.
    pub(super) async fn run(
        mut self,
        mut link: AgentLink,
        notices: mpsc::Receiver<ServerMessage>,
        close: watch::Receiver<Option<CloseReason>>,
    ) -> anyhow::Result<()> {
        let result = self.serve(&mut link, notices, close).await;
        self.wind_down().await;
        result
    }

    /// Leaves nothing behind for the agent's next session: open partial files
    /// are flushed and closed, and pages being committed are committed.
    pub(super) async fn wind_down(&mut self) {
        // A chunk cut off midway was never checked: keep only whole chunks.
        if let Some(receiving) = self.receiving.take()
            && let Some(upload) = self.uploads.get_mut(&receiving.capture_id)
            && let Some(sink) = upload.sink.as_mut()
            && let Err(e) = receiving.undo(sink, &upload.path)
        {
            tracing::warn!(error = format!("{e:#}"), "dropping a cut-off chunk");
        }
        for (_, mut upload) in self.uploads.drain() {
            // Partial files hold no buffered bytes (pieces are written as
            // they come); the agent may come back through another replica,
            // so leave what it sent there.
            if let Some(shared) = &self.state.shared_partials
                && upload.received > upload.durable
            {
                checkpoint(&**shared, &self.agent.id, &mut upload).await;
            }
        }
        while self.committing.next().await.is_some() {}
    }

    pub(super) async fn serve(
        &mut self,
        link: &mut AgentLink,
        mut notices: mpsc::Receiver<ServerMessage>,
        mut close: watch::Receiver<Option<CloseReason>>,
    ) -> anyhow::Result<()> {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, link.recv()).await {
            Ok(Ok(Some(Inbound::Text(text)))) => serde_json::from_str::<AgentMessage>(&text).ok(),
            Ok(_) => None,
            Err(_) => anyhow::bail!("no hello within {HELLO_TIMEOUT:?}"),
        };
        let Some(AgentMessage::Hello(hello)) = hello else {
            send(
                link,
                &error(
                    "expected_hello",
                    "the first message must be hello",
                    None,
                    true,
                ),
            )
            .await?;
            anyhow::bail!("first message was not a hello");
        };
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
            let message = format!(
                "server speaks uplink protocol {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, agent sent {}; update the agent",
                hello.protocol_version
            );
            send(
                link,
                &error("unsupported_protocol", message.clone(), None, true),
            )
            .await?;
            anyhow::bail!(message);
        }
        self.state.store.agent_seen(&self.agent.id, None).await?;
        let mut cover_keys = self.state.cover_keys.current(&*self.state.store).await?;
        let welcome = Welcome {
            protocol_version: hello.protocol_version,
            agent_id: self.agent.id.clone(),
            site: self.agent.site.clone(),
            cover_patterns: self.state.store.cover_patterns().await?,
            max_chunk_bytes: PREFERRED_CHUNK_BYTES as u64,
            window_pages: WINDOW_PAGES,
            window_bytes: WINDOW_BYTES,
            cover_keys: cover_keys.published.clone(),
        };
        send(link, &ServerMessage::Welcome(welcome)).await?;
        // Only agents that speak version 3 read a key push.
        let hears_key_pushes = hello.protocol_version >= 3;

        // An agent pings every few seconds; silence this long means the link is
        // half-open (the peer vanished without a FIN) or dead.
        let idle_limit = self.state.config.uplink_idle_timeout;
        let mut silent_since = tokio::time::Instant::now();
        let mut registry_gone = false;
        loop {
            let received = tokio::select! {
                Some(notice) = notices.recv() => {
                    send(link, &notice).await?;
                    continue;
                }
                Some((id, packet_id, answer)) = self.committing.next(), if !self.committing.is_empty() => {
                    self.committing_ids.remove(&id);
                    if matches!(answer, Ok(Ok(_))) {
                        self.forget_shared(id);
                    }
                    for reply in committed(id, packet_id, answer) {
                        send(link, &reply).await?;
                    }
                    continue;
                }
                changed = close.changed(), if !registry_gone => {
                    let reason = *close.borrow_and_update();
                    match (changed, reason) {
                        (_, Some(reason)) => {
                            tracing::info!(?reason, "closing the session");
                            let _ = send(link, &closing(reason)).await;
                            let why = format!("{reason:?}").to_lowercase();
                            let _ = link.close(websocket::CLOSE_POLICY, &why).await;
                            return Ok(());
                        }
                        (Err(_), None) => registry_gone = true,
                        (Ok(()), None) => {}
                    }
                    continue;
                }
                received = tokio::time::timeout_at(silent_since + idle_limit, link.recv()) => received,
            };
            let inbound = match received {
                Err(_) => anyhow::bail!(
                    "no word from the agent for {idle_limit:?}: the link is half-open"
                ),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(inbound))) => inbound,
                Ok(Err(ReadError::Io(e))) => return Err(e).context("reading from agent"),
                Ok(Err(e)) => {
                    // Frames against the rules end the connection; say why
                    // if the socket still takes a reply (a reset one will not).
                    let code = match e {
                        ReadError::Chunk(_) => "bad_chunk",
                        _ => "bad_frame",
                    };
                    let why = format!("unreadable frame: {e}");
                    let _ = send(link, &error(code, why, None, true)).await;
                    return Err(e).context("reading from agent");
                }
            };
            silent_since = tokio::time::Instant::now();
            let replies = match inbound {
                Inbound::Text(text) => match serde_json::from_str::<AgentMessage>(&text) {
                    Ok(msg) => self.on_message(msg).await?,
                    Err(e) => vec![error(
                        "malformed",
                        format!("unreadable message: {e}"),
                        None,
                        true,
                    )],
                },
                Inbound::ChunkStart {
                    capture_id,
                    offset,
                    len,
                } => self.on_chunk_start(capture_id, offset, len).await?,
                Inbound::ChunkData(piece) => {
                    self.on_chunk_data(&piece)?;
                    Vec::new()
                }
                Inbound::ChunkEnd { intact } => self.on_chunk_end(intact).await?,
                Inbound::Ping(payload) => {
                    link.pong(&payload).await.context("answering a ping")?;
                    // The agent's pings pace the check for a key rotation.
                    match self.state.cover_keys.current(&*self.state.store).await {
                        Ok(now) if hears_key_pushes && now.published != cover_keys.published => {
                            cover_keys = now;
                            vec![ServerMessage::CoverKeys {
                                keys: cover_keys.published.clone(),
                            }]
                        }
                        Ok(_) => Vec::new(),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "could not read the cover keys");
                            Vec::new()
                        }
                    }
                }
                Inbound::Close => {
                    let _ = link.close(websocket::CLOSE_NORMAL, "").await;
                    return Ok(());
                }
            };
            for reply in &replies {
                send(link, reply).await?;
            }
            if let Some(ServerMessage::Error(ProtocolError {
                fatal: true,
                message,
                ..
            })) = replies.last()
            {
                anyhow::bail!("protocol error: {message}");
            }
        }
    }

    pub(super) async fn on_message(
        &mut self,
        msg: AgentMessage,
    ) -> anyhow::Result<Vec<ServerMessage>> {
        match msg {
            AgentMessage::Hello(_) => Ok(vec![error(
                "unexpected_hello",
                "hello was already received",
                None,
                true,
            )]),
            AgentMessage::Offer(offer) => self.on_offer(offer).await,
            AgentMessage::Seal(seal) => self.on_seal(seal).await,
            AgentMessage::Report(report) => {
                // Beyond what the database holds: say which counter, rather
                // than failing the store write and dropping the link unexplained.
                if let Err(why) = check_report(&report) {
                    return Ok(vec![error("bad_report", why, None, true)]);
                }
                self.state
                    .store
                    .agent_seen(&self.agent.id, Some(report))
                    .await?;
                Ok(Vec::new())
            }
        }
    }

    /// Drops a page's shared partial, if it had one, without waiting.
    pub(super) fn forget_shared(&mut self, id: Uuid) {
        if let Some(shared) = &self.state.shared_partials
            && self.shared_ids.remove(&id)
        {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                if let Err(e) = shared.forget(id).await {
                    tracing::warn!(page = %id, error = format!("{e:#}"), "dropping a shared partial upload");
                }
            });
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.uploads.len() + self.committing.len()
    }

    pub(super) async fn on_offer(
        &mut self,
        offer: PageOffer,
    ) -> anyhow::Result<Vec<ServerMessage>> {
        let id = offer.capture_id;
        // Stored answers before any check: a page whose `stored` was lost is
        // offered again, and limits changed since must not refuse it for good
        // (its packet would never seal). Only this agent's own pages count.
        if self.state.store.page_stored(id, &self.agent.id).await? {
            return Ok(vec![ServerMessage::Stored { capture_id: id }]);
        }
        if let Err(why) = validate_offer(&offer, self.state.config.max_page_bytes) {
            return Ok(vec![refusal("bad_offer", why, id)]);
        }
        // Already on its way into the store: its `stored` will come.
        if self.committing_ids.contains(&id) {
            return Ok(Vec::new());
        }
        self.uploads.remove(&id);
        if self.in_flight() >= WINDOW_PAGES as usize {
            let msg = format!("at most {WINDOW_PAGES} pages may be in flight");
            return Ok(vec![error("too_many_uploads", msg, Some(id), false)]);
        }
        // Same bytes already here (from this or another page): no need to send
        // them, if this site delivered them before. A hash alone must not let
        // a desk attach bytes it never had (another site's scans): any other
        // desk sends them, and the blob store keeps one copy.
        if self.state.blobs.contains(&offer.sha256).await?
            && self
                .state
                .store
                .site_holds_blob(&self.agent.site, &offer.sha256)
                .await?
        {
            // The bytes held may be of another type than this offer says.
            let held = self.state.blobs.get(&offer.sha256).await?;
            if let Err(why) = head_matches_type(&held, &offer.content_type) {
                return Ok(vec![refusal("content_mismatch", why, id)]);
            }
            self.commit(offer, None).await;
            return Ok(Vec::new());
        }
        let upload = self.open_partial(offer).await?;
        let offset = upload.received;
        // All bytes arrived before a crash or a lost link: finish now, no chunk will come.
        if offset == upload.offer.size {
            return self.finish(upload).await;
        }
        self.uploads.insert(id, upload);
        Ok(vec![ServerMessage::Resume {
            capture_id: id,
            offset,
        }])
    }

    /// Opens (or reopens, after a reconnect) the partial file of a page,
    /// taking the shared partial's bytes when another replica got further.
    pub(super) async fn open_partial(&mut self, offer: PageOffer) -> anyhow::Result<Upload> {
        let dir = self.state.config.partials_dir().join(&self.agent.id);
        let path = dir.join(format!("{}.part", offer.capture_id));
        let mut durable = 0;
        if let Some(shared) = &self.state.shared_partials {
            let key = PartialKey {
                capture_id: offer.capture_id,
                agent_id: &self.agent.id,
                sha256: &offer.sha256,
                size: offer.size,
            };
            match shared.load(&key).await {
                Ok(held) => {
                    durable = held.len() as u64;
                    if durable > 0 {
                        self.shared_ids.insert(offer.capture_id);
                    }
                    let local = tokio::fs::metadata(&path)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    // Same capture id, same bytes: the longer prefix wins.
                    if durable > local && durable <= offer.size {
                        tokio::fs::create_dir_all(&dir)
                            .await
                            .with_context(|| format!("creating {}", dir.display()))?;
                        tokio::fs::write(&path, &held)
                            .await
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                Err(e) => {
                    tracing::warn!(page = %offer.capture_id, error = format!("{e:#}"), "reading the shared partial upload");
                }
            }
        }
        // Only where to resume; the file is opened when its bytes come. A
        // stat of a file this session wrote is served from memory, so it is
        // done right here rather than on the blocking pool.
        let received = match std::fs::metadata(&path) {
            // A longer file is not this page's: `PartialSink::open` starts it over.
            Ok(meta) if meta.len() <= offer.size => meta.len(),
            Ok(_) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Upload {
            offer,
            path,
            sink: None,
            received,
            durable,
            checkpoint_due: durable.max(received) + CHECKPOINT_BYTES as u64,
        })
    }

    /// Opens the partial file of upload `id` for its bytes, closing any other
    /// this session holds open: agents send one page's bytes at a time, and
    /// one that interleaves pages pays a re-hash, not a descriptor per page.
    pub(super) async fn open_sink(&mut self, id: Uuid) -> anyhow::Result<()> {
        for (other, upload) in self.uploads.iter_mut() {
            if *other != id {
                upload.sink = None;
            }
        }
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(());
        };
        let (sink, on_disk) = PartialSink::open_for(upload).await?;
        // Normally what the offer was told; if the file changed since (it was
        // swept, say), the chunk's offset no longer matches and the agent
        // offers the page again.
        upload.received = on_disk;
        upload.sink = Some(sink);
        Ok(())
    }

    /// A chunk's bytes begin: checks them against the page's upload and
    /// opens its partial file, or refuses them (they are then dropped).
    pub(super) async fn on_chunk_start(
        &mut self,
        id: Uuid,
        offset: u64,
        len: u64,
    ) -> anyhow::Result<Vec<ServerMessage>> {
        self.receiving = None;
        if self.uploads.get(&id).is_some_and(|u| u.sink.is_none()) {
            self.open_sink(id).await?;
        }
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(vec![error(
                "unknown_upload",
                "chunk for a page that was not offered",
                Some(id),
                false,
            )]);
        };
        if offset != upload.received {
            let msg = format!("chunk at offset {offset}, expected {}", upload.received);
            self.uploads.remove(&id);
            return Ok(vec![error("out_of_order", msg, Some(id), false)]);
        }
        if upload.received + len > upload.offer.size {
            if let Some(upload) = self.uploads.remove(&id) {
                drop(upload.sink);
                let _ = tokio::fs::remove_file(&upload.path).await;
            }
            return Ok(vec![error(
                "too_long",
                "more bytes than the offer said",
                Some(id),
                false,
            )]);
        }
        let Some(sink) = upload.sink.as_ref() else {
            anyhow::bail!("no open partial file for page {id}");
        };
        self.receiving = Some(Receiving {
            capture_id: id,
            start: upload.received,
            len,
            hash_before: sink.hasher.clone(),
        });
        Ok(Vec::new())
    }

    /// Writes a piece of the current chunk into its partial file and hash.
    pub(super) fn on_chunk_data(&mut self, piece: &[u8]) -> anyhow::Result<()> {
        let Some(receiving) = &self.receiving else {
            return Ok(()); // a refused chunk
        };
        let Some(upload) = self.uploads.get_mut(&receiving.capture_id) else {
            return Ok(());
        };
        let Some(sink) = upload.sink.as_mut() else {
            anyhow::bail!("no open partial file for page {}", receiving.capture_id);
        };
        // Written and hashed right here on the worker, not on the blocking
        // pool: a piece is at most 64 KiB into the page cache (microseconds),
        // and the round trip to a pool thread cost more than the write itself
        // (see PERFORMANCE.md). The sync happens in the group commit.
        sink.file
            .write_all(piece)
            .with_context(|| format!("writing {}", upload.path.display()))?;
        sink.hasher.update(piece);
        Ok(())
    }

    /// A chunk's bytes are all in: a damaged chunk is undone and ends the
    /// connection; an intact one counts, and may complete its page.
    pub(super) async fn on_chunk_end(
        &mut self,
        intact: bool,
    ) -> anyhow::Result<Vec<ServerMessage>> {
        let damaged = || {
            let msg = "chunk checksum mismatch: damaged on the way";
            vec![error("bad_chunk", msg, None, true)]
        };
        let Some(receiving) = self.receiving.take() else {
            return Ok(if intact { Vec::new() } else { damaged() });
        };
        let id = receiving.capture_id;
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(Vec::new());
        };
        if !intact {
            if let Some(sink) = upload.sink.as_mut() {
                receiving.undo(sink, &upload.path)?;
            }
            return Ok(damaged());
        }
        upload.received += receiving.len;
        if upload.received < upload.offer.size {
            if let Some(shared) = &self.state.shared_partials
                && upload.received >= upload.checkpoint_due
            {
                upload.durable = checkpoint(&**shared, &self.agent.id, upload).await;
                upload.checkpoint_due = upload.received + CHECKPOINT_BYTES as u64;
                self.shared_ids.insert(id);
            }
            return Ok(Vec::new());
        }
        match self.uploads.remove(&id) {
            Some(upload) => self.finish(upload).await,
            None => Ok(Vec::new()),
        }
    }

    /// Verifies a complete partial upload and hands it to the group commit,
    /// which syncs it, moves it into the blob store and records the page.
    pub(super) async fn finish(&mut self, upload: Upload) -> anyhow::Result<Vec<ServerMessage>> {
        let id = upload.offer.capture_id;
        // All bytes were already there at the offer: nothing opened it yet.
        let sink = match upload.sink {
            Some(sink) => sink,
            None => PartialSink::open_for(&upload).await?.0,
        };
        let digest = hex::encode(sink.hasher.finalize());
        // fstat on the open file: the inode is in memory, no pool trip needed.
        let on_disk = sink
            .file
            .metadata()
            .with_context(|| format!("reading {}", upload.path.display()))?
            .len();
        drop(sink.file);
        if digest != upload.offer.sha256 || on_disk != upload.offer.size {
            let _ = tokio::fs::remove_file(&upload.path).await;
            self.forget_shared(id);
            let msg = format!("bytes hash to {digest}, offer said {}", upload.offer.sha256);
            return Ok(vec![error("checksum_mismatch", msg, Some(id), false)]);
        }
        if let Err(why) = bytes_match_type(&upload.path, &upload.offer.content_type) {
            let _ = tokio::fs::remove_file(&upload.path).await;
            self.forget_shared(id);
            return Ok(vec![refusal("content_mismatch", why, id)]);
        }
        self.commit(upload.offer, Some(upload.path)).await;
        Ok(Vec::new())
    }

    /// Queues a page whose bytes are whole for the next group commit; its
    /// `stored` goes out when that commit is durable.
    pub(super) async fn commit(&mut self, offer: PageOffer, partial: Option<PathBuf>) {
        let id = offer.capture_id;
        let packet_id = offer.packet_id;
        let page = StoredPage {
            capture_id: id,
            packet_id,
            page_index: offer.page_index,
            cover_code: offer.cover_code,
            sha256: offer.sha256,
            size: offer.size,
            content_type: offer.content_type,
            source_name: offer.source_name,
            barcodes: offer.barcodes,
            blank: offer.blank,
            packet_seq: offer.packet_seq,
        };
        let answer = self
            .state
            .committer
            .commit(self.agent.clone(), page, partial)
            .await;
        self.committing_ids.insert(id);
        self.committing
            .push(Box::pin(async move { (id, packet_id, answer.await) }));
    }

    /// A cover-less packet the clerk chose as a rejected document's rescan:
    /// attached in place of its pages, or left unmatched saying why not.
    async fn rescan(
        &self,
        packet_id: Uuid,
        document_id: i64,
        unmatched: String,
    ) -> anyhow::Result<PacketResolution> {
        Ok(
            match crate::app::desks::attach_rescan(&self.state, &self.agent, packet_id, document_id)
                .await?
            {
                Ok(doc) => PacketResolution::Matched {
                    document_id: doc.id,
                    doc_no: doc.doc_no,
                },
                Err(why) => PacketResolution::Unmatched {
                    reason: format!("{unmatched}; not taken as the chosen rescan: {why}"),
                },
            },
        )
    }

    /// VAT invoices on a just-matched document that are already on another
    /// live one, in the clerk's words.
    async fn duplicate_invoices(&self, document_id: i64) -> anyhow::Result<Vec<String>> {
        let mut said = Vec::new();
        for conflict in self.state.store.document_conflicts(document_id).await? {
            let other = self
                .state
                .store
                .document(conflict.other_document_id)
                .await?
                .map_or_else(|| format!("#{}", conflict.other_document_id), |d| d.doc_no);
            said.push(format!(
                "duplicate invoice {} {} is already on document {other}",
                conflict.invoice_code, conflict.invoice_number
            ));
        }
        Ok(said)
    }

    pub(super) async fn on_seal(&mut self, seal: PacketSeal) -> anyhow::Result<Vec<ServerMessage>> {
        let packet_id = seal.packet_id;
        if let Err(why) = validate_seal(&seal) {
            return Ok(vec![seal_error("bad_seal", why, packet_id, true)]);
        }
        // A desk seals a packet once all its pages are stored, so a seal of
        // pages with no first page here names a packet never offered: it
        // would leave an open packet behind that nothing ever completes.
        // (The store itself takes a seal before pages: see its tests.)
        if seal.page_count > 0
            && !self
                .state
                .store
                .packet_has_pages(packet_id, &self.agent.id)
                .await?
        {
            return Ok(vec![seal_error(
                "unknown_packet",
                format!(
                    "packet {packet_id} has no stored page: seal a packet after its pages are stored"
                ),
                packet_id,
                true,
            )]);
        }
        let rescan_of = seal.rescan_of.filter(|_| seal.cover_code.is_none());
        match self.state.store.seal_packet(&self.agent, seal).await {
            Ok(resolution) => {
                let resolution = match (resolution, rescan_of) {
                    (PacketResolution::Unmatched { reason }, Some(document_id)) => {
                        self.rescan(packet_id, document_id, reason).await?
                    }
                    (resolution, _) => resolution,
                };
                let matched_to = match &resolution {
                    PacketResolution::Matched { document_id, .. } => Some(*document_id),
                    _ => None,
                };
                let mut told = outcome(packet_id, resolution);
                if let (Some(ServerMessage::PacketOutcome(said)), Some(document_id)) =
                    (&mut told, matched_to)
                {
                    said.warnings = self.duplicate_invoices(document_id).await?;
                }
                let mut replies = vec![ServerMessage::Sealed { packet_id }];
                replies.extend(told);
                Ok(replies)
            }
            Err(crate::store::StoreError::Conflict(msg)) => {
                Ok(vec![seal_error("conflict", msg, packet_id, true)])
            }
            // The disk or database, not the seal: the agent tries again later.
            Err(e) => {
                tracing::error!(packet = %packet_id, error = %e, "could not record a seal");
                Ok(vec![seal_error(
                    "store_failed",
                    format!("could not record the seal: {e}"),
                    packet_id,
                    false,
                )])
            }
        }
    }
}
