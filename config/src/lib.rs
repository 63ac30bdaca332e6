//! causeway-config (in progress)
