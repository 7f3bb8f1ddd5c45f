-- The W3C trace context of the append that wrote the row (NULL when the command process does
-- not export traces): the relay's publish joins that trace and hands its own context to the
-- bus, so the projectors' work is part of the command's trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
