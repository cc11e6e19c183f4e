//! The `alarm` table (`FORMAT.md`): one record per active alarm,
//! keyed by the protobuf `etcdserverpb.AlarmMember` (member id and alarm
//! type) as etcd's alarm store keys its bucket, with an empty value. The
//! server's alarm store decides; this module is the only one that knows
//! how an alarm is written.

use api::etcdserverpb::AlarmMember;
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use crate::schema::ALARM_TABLE;
use crate::{Backend, BackendError};

/// Every alarm stored in `backend`. Errors: the backend's, a key that is
/// not an `AlarmMember`.
pub fn load(backend: &Backend) -> Result<Vec<AlarmMember>, BackendError> {
    let rtx = backend.read()?;
    let t = rtx.open_table(ALARM_TABLE)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, _) = item?;
        let m = AlarmMember::decode(k.value())
            .map_err(|e| BackendError::Corrupt(format!("alarm record: {e}")))?;
        out.push(m);
    }
    Ok(out)
}

/// Writes to the `alarm` table inside an apply batch's transaction
/// ([`crate::mvcc::StoreTxn::alarm_table`]).
pub struct AlarmTable<'a>(pub(crate) &'a WriteTransaction);

impl AlarmTable<'_> {
    /// Records alarm `m` as active.
    pub fn put(&self, m: &AlarmMember) -> Result<(), BackendError> {
        let mut t = self.0.open_table(ALARM_TABLE)?;
        t.insert(m.encode_to_vec().as_slice(), [].as_slice())?;
        Ok(())
    }

    /// Removes alarm `m`.
    pub fn remove(&self, m: &AlarmMember) -> Result<(), BackendError> {
        let mut t = self.0.open_table(ALARM_TABLE)?;
        t.remove(m.encode_to_vec().as_slice())?;
        Ok(())
    }
}
