-- The e-mail address a forge showed for the operator's account at
-- sign-in, for GET /me (issue #25). NULL when the forge hides it, and for
-- rows written before this migration until the next sign-in.
ALTER TABLE operator_oauth_tokens ADD COLUMN account_email TEXT;
