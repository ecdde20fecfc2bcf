-- The desk's packet sequence (scan order per agent), sent by newer agents on
-- offers and seals: late binding attaches one agent's waiting packets in this
-- order rather than in the order their bytes arrived. NULL from older agents.

ALTER TABLE packets ADD COLUMN desk_seq BIGINT;
