-- Issue 13: DFA-GPT's recipe trains the mmproj's projector with the LoRA, so
-- a registry entry is a pair: the LoRA and, optionally, the mmproj trained
-- with it (file in the adapter store, relative path, and its sha256). NULL:
-- the entry is served with the configured model.mmproj. Verdicts already
-- record the mmproj_sha256 they were made with.
ALTER TABLE adapters
    ADD COLUMN mmproj_path TEXT,
    ADD COLUMN mmproj_sha256 TEXT,
    ADD CONSTRAINT adapters_mmproj_pair CHECK ((mmproj_path IS NULL) = (mmproj_sha256 IS NULL));
