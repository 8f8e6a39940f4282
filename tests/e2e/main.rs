//! End-to-end tests: the pacs2cd binary against real DCMTK peers on
//! loopback. One test binary (see Cargo.toml), one shared harness.

mod attacks;
mod audit;
mod cgi;
mod cli;
mod data;
mod dicom_gen;
mod disc;
mod fetch;
mod harness;
mod identity;
mod live_page;
mod misbehaving;
mod objects;
mod package;
mod print;
mod promises;
mod receiver;
mod relay;
mod robots;
mod staging;
mod verdict;
mod whole;
