-- One checkpoint version by its fingerprint ($fingerprint).
SELECT * FROM checkpoints WHERE fingerprint = $fingerprint;
