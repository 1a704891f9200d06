//! The request pipeline, in the shape of Java's processor chain:
//! [`prep`] (validate, assign zxid, build a [`txn::Txn`]) → log → [`apply`] (mutate the tree,
//! fire watches) → reply; [`read`] answers reads from the tree.

pub mod apply;
pub mod prep;
pub mod read;
pub mod txn;
