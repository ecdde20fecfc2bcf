-- Why a packet's first page, which looked like a cover, was not taken as one
-- (its QR signature failed): the desk says so in the seal, and the packet
-- stays unmatched with it as the reason. NULL for every other packet.

ALTER TABLE packets ADD COLUMN cover_problem TEXT;
