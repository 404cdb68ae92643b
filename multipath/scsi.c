/*
 * scsi.c - SCSI status and sense data to device-layer errors.  Shared by
 * every SCSI transport (iSCSI today, SG_IO later) so that failover and
 * retry decisions are made from one table.
 */
#include <errno.h>

#include "mp_int.h"

/* SAM status codes */
enum {
	ST_GOOD = 0x00,
	ST_CHECK_CONDITION = 0x02,
	ST_CONDITION_MET = 0x04,
	ST_BUSY = 0x08,
	ST_RESERVATION_CONFLICT = 0x18,
	ST_TASK_SET_FULL = 0x28,
	ST_ACA_ACTIVE = 0x30,
	ST_TASK_ABORTED = 0x40,
};

/* sense keys */
enum {
	SK_NO_SENSE = 0x0,
	SK_RECOVERED = 0x1,
	SK_NOT_READY = 0x2,
	SK_MEDIUM = 0x3,
	SK_HARDWARE = 0x4,
	SK_ILLEGAL = 0x5,
	SK_UNIT_ATTENTION = 0x6,
	SK_DATA_PROTECT = 0x7,
	SK_ABORTED = 0xb,
	SK_MISCOMPARE = 0xe,
};

int mp_scsi_result(int status, int key, int asc, int ascq)
{
	switch (status) {
	case ST_GOOD:
	case ST_CONDITION_MET:
		return 0;
	case ST_BUSY:
	case ST_ACA_ACTIVE:
		return -MP_E_BUSY;
	case ST_TASK_SET_FULL:
		return -MP_E_QFULL;
	case ST_RESERVATION_CONFLICT:
		return -MP_E_RESCONFLICT;
	case ST_TASK_ABORTED:
		return -MP_E_TRANSPORT;
	case ST_CHECK_CONDITION:
		break;
	default:
		return -EIO;
	}

	switch (key) {
	case SK_NO_SENSE:
	case SK_RECOVERED:
		return 0;
	case SK_MISCOMPARE:
		return -MP_E_MISCOMPARE;
	case SK_MEDIUM:
		return -MP_E_MEDIUM;
	case SK_DATA_PROTECT:
		return -EROFS;
	case SK_ILLEGAL:
		/* 25/00 LOGICAL UNIT NOT SUPPORTED: the LUN is gone for good
		 * (VMware's PDL condition). */
		if (asc == 0x25 && ascq == 0x00)
			return -MP_E_PDL;
		/* 20/00 INVALID COMMAND OPERATION CODE, 24/00 INVALID FIELD
		 * IN CDB: the device does not offer what we asked for. */
		if (asc == 0x20 || (asc == 0x24 && ascq == 0x00))
			return -EOPNOTSUPP;
		if (asc == 0x21)  /* LBA out of range */
			return -EINVAL;
		return -MP_E_ILLEGAL;
	case SK_NOT_READY:
		/* 04/03 manual intervention required, 3A medium not present:
		 * not going to get better by waiting. */
		if ((asc == 0x04 && ascq == 0x03) || asc == 0x3a)
			return -MP_E_PDL;
		return -EAGAIN;
	case SK_UNIT_ATTENTION:
		/* 3F/0E REPORTED LUNS DATA HAS CHANGED with the LUN gone is
		 * handled above; other UAs are retried by the caller. */
		return -EAGAIN;
	case SK_ABORTED:
		return -MP_E_TRANSPORT;
	case SK_HARDWARE:
		return -EIO;
	default:
		return -MP_E_CHECK;
	}
}

bool mp_scsi_retryable(int status, int key, int asc, int ascq)
{
	if (status != ST_CHECK_CONDITION)
		return false;
	if (key == SK_UNIT_ATTENTION)
		return true;
	/* 04/01 becoming ready, 04/00 cause not reportable: wait it out. */
	if (key == SK_NOT_READY && asc == 0x04 && (ascq == 0x00 || ascq == 0x01))
		return true;
	if (key == SK_ABORTED)
		return true;
	return false;
}
