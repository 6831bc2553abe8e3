-- Forget the published-file inventory: the output root no longer holds what it lists.
DELETE FROM published_files;
