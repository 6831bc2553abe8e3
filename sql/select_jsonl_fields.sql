-- Picks apart JSONL landing lines (landing_lines: _line, text) into one text column per
-- field, with the structural checks the reader owns: the line is a JSON object without repeated
-- keys, text fields are strings, metadata is an object, and which JSON type the amount has.
-- Grain: one row per non-blank line.
WITH parsed AS (
    SELECT
        _line,
        text,
        CASE WHEN json_valid(text) THEN text::JSON END AS doc
    FROM landing_lines
),
shaped AS (
    SELECT
        *,
        CASE
            WHEN doc IS NULL THEN 'is not valid JSON'
            WHEN json_type(doc) <> 'OBJECT' THEN 'is JSON but not an object'
            WHEN len(json_keys(doc)) <> len(list_distinct(json_keys(doc)))
                THEN 'repeats a key'
        END AS json_problem
    FROM parsed
),
typed AS (
    SELECT
        *,
        CASE
        WHEN json_type(doc, '$.tenant_id') NOT IN ('VARCHAR', 'NULL') THEN 'tenant_id'
        WHEN json_type(doc, '$.environment') NOT IN ('VARCHAR', 'NULL') THEN 'environment'
        WHEN json_type(doc, '$.delta_id') NOT IN ('VARCHAR', 'NULL') THEN 'delta_id'
        WHEN json_type(doc, '$.customer_id') NOT IN ('VARCHAR', 'NULL') THEN 'customer_id'
        WHEN json_type(doc, '$.reason') NOT IN ('VARCHAR', 'NULL') THEN 'reason'
        WHEN json_type(doc, '$.reference_id') NOT IN ('VARCHAR', 'NULL') THEN 'reference_id'
        WHEN json_type(doc, '$.status') NOT IN ('VARCHAR', 'NULL') THEN 'status'
        WHEN json_type(doc, '$.occurred_at') NOT IN ('VARCHAR', 'NULL') THEN 'occurred_at'
        WHEN json_type(doc, '$.amount') NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE', 'NULL')
            THEN 'amount'
        WHEN json_type(doc, '$.metadata') NOT IN ('OBJECT', 'NULL') THEN 'metadata'
        END AS bad_type_field
    FROM shaped
    WHERE json_problem IS NULL
)
SELECT
    _line,
    text AS _raw,
    'INVALID_JSON' AS _reader_code,
    '' AS _reader_field,
    'the line ' || json_problem AS _reader_message,
    NULL AS _amount_type,
    NULL AS tenant_id,
    NULL AS environment,
    NULL AS delta_id,
    NULL AS customer_id,
    NULL AS reason,
    NULL AS reference_id,
    NULL AS status,
    NULL AS occurred_at,
    NULL AS amount,
    NULL AS metadata
FROM shaped
WHERE json_problem IS NOT NULL
UNION ALL BY NAME
SELECT
    _line,
    text AS _raw,
    CASE WHEN bad_type_field IS NOT NULL THEN 'INVALID_FIELD_TYPE' END AS _reader_code,
    bad_type_field AS _reader_field,
    CASE WHEN bad_type_field IS NOT NULL
        THEN 'is a JSON ' || CASE json_type(doc, '$.' || bad_type_field)
                WHEN 'VARCHAR' THEN 'string' WHEN 'OBJECT' THEN 'object'
                WHEN 'ARRAY' THEN 'array' WHEN 'BOOLEAN' THEN 'boolean' ELSE 'number' END
            || CASE WHEN bad_type_field = 'metadata' THEN ', not an object'
                    WHEN bad_type_field = 'amount' THEN ', not a string or an integer'
                    ELSE ', not a string' END
    END AS _reader_message,
    CASE
        WHEN json_type(doc, '$.amount') = 'VARCHAR' THEN 'string'
        WHEN json_type(doc, '$.amount') IN ('BIGINT', 'UBIGINT') THEN 'integer'
        -- integers beyond 64 bits come back as DOUBLE; their digits are still exact text
        WHEN json_type(doc, '$.amount') = 'DOUBLE' AND regexp_full_match(doc ->> '$.amount', '-?[0-9]+')
            THEN 'integer'
        WHEN json_type(doc, '$.amount') = 'DOUBLE' THEN 'float'
    END AS _amount_type,
    doc ->> '$.tenant_id' AS tenant_id,
    doc ->> '$.environment' AS environment,
    doc ->> '$.delta_id' AS delta_id,
    doc ->> '$.customer_id' AS customer_id,
    doc ->> '$.reason' AS reason,
    doc ->> '$.reference_id' AS reference_id,
    doc ->> '$.status' AS status,
    doc ->> '$.occurred_at' AS occurred_at,
    CASE WHEN json_type(doc, '$.amount') <> 'NULL' THEN doc ->> '$.amount' END AS amount,
    CASE WHEN json_type(doc, '$.metadata') = 'OBJECT' THEN (doc -> '$.metadata')::VARCHAR
    END AS metadata
FROM typed
ORDER BY _line
