-- Forget every due customer: a nightly checkpoint stage has just checked them all.
DELETE FROM checkpoint_due;
