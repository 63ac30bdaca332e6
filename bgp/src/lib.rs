//! causeway-bgp (in progress)
