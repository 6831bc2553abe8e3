-- Insert fresh period summaries (staged_customer_periods).
INSERT INTO customer_periods BY NAME
SELECT * FROM staged_customer_periods;
