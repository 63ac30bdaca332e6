//! causeway-dataplane (in progress)
