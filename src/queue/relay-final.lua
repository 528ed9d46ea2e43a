-- A job's final relay frame (done or error; src/queue/frames.ts), published and kept for a web process whose subscriber was
-- reconnecting when it went out. The first final message of a request wins (a re-run's refusal does not
-- replace an answer). The stream-started mark ends with it, and so does the sender's claim on the run.
-- KEYS[1] the request's result key, KEYS[2] its stream-started mark, KEYS[3] its run claim.
-- ARGV[1] the relay channel, ARGV[2] the message, ARGV[3] how long to keep it (ms), ARGV[4] what to publish: the
-- message itself, or for a large one a "kept" frame that sends the web side to the kept copy; ARGV[5] the
-- sending worker's id (a claim of another worker stays).
-- Returns how many subscribers got it (PUBLISH).
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX')
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return redis.call('PUBLISH', ARGV[1], ARGV[4])
