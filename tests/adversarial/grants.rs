//! Grants say how a secret may be used: reveal, or use at egress only.
