"""The anonymization profiles of Orthanc (``DicomVersion`` "2008", "2017c", "2021b", "2023b").

Each profile is the set of tags Orthanc removes, empties ("clearings") and replaces
by a generated UID ("uids") when it anonymizes.  The lists were not copied from a
document: they were measured on the real Orthanc 1.10.1 by anonymizing, with each
profile, one file holding every public tag of the DICOM dictionary, and diffing
the result.  PatientName and PatientID (renamed), the three identifying UIDs
(regenerated for every anonymization) and the de-identification tags themselves
are handled by :mod:`server.dicom.modify`, not listed here.  Overlay and curve
groups (50xx, 60xx) are left alone, as Orthanc 1.10.1 does.
"""

from __future__ import annotations

from dataclasses import dataclass

import server


@dataclass(frozen=True)
class Profile:
    """One column of PS 3.15 Table E.1-1 as Orthanc applies it."""

    method: str
    removals: frozenset[int]
    clearings: frozenset[int]
    uids: frozenset[int]


#: DicomVersion "2008": 39 removals, 0 clearings, 8 UIDs.
PROFILE_2008 = Profile(
    method="PS 3.15-2008 Table E.1-1",
    removals=frozenset({
        0x00080050,  # AccessionNumber
        0x00080080,  # InstitutionName
        0x00080081,  # InstitutionAddress
        0x00080090,  # ReferringPhysicianName
        0x00080092,  # ReferringPhysicianAddress
        0x00080094,  # ReferringPhysicianTelephoneNumbers
        0x00081010,  # StationName
        0x00081030,  # StudyDescription
        0x0008103E,  # SeriesDescription
        0x00081040,  # InstitutionalDepartmentName
        0x00081048,  # PhysiciansOfRecord
        0x00081050,  # PerformingPhysicianName
        0x00081060,  # NameOfPhysiciansReadingStudy
        0x00081070,  # OperatorsName
        0x00081080,  # AdmittingDiagnosesDescription
        0x00082111,  # DerivationDescription
        0x00100030,  # PatientBirthDate
        0x00100032,  # PatientBirthTime
        0x00100040,  # PatientSex
        0x00101000,  # OtherPatientIDs
        0x00101001,  # OtherPatientNames
        0x00101010,  # PatientAge
        0x00101020,  # PatientSize
        0x00101030,  # PatientWeight
        0x00101040,  # PatientAddress
        0x00101090,  # MedicalRecordLocator
        0x00102000,  # MedicalAlerts
        0x00102154,  # PatientTelephoneNumbers
        0x00102160,  # EthnicGroup
        0x00102180,  # Occupation
        0x001021B0,  # AdditionalPatientHistory
        0x00104000,  # PatientComments
        0x00181000,  # DeviceSerialNumber
        0x00181030,  # ProtocolName
        0x00200010,  # StudyID
        0x00204000,  # ImageComments
        0x00321032,  # RequestingPhysician
        0x00400275,  # RequestAttributesSequence
        0x0040A730,  # ContentSequence
    }),
    clearings=frozenset({
    }),
    uids=frozenset({
        0x00080014,  # InstanceCreatorUID
        0x00081155,  # ReferencedSOPInstanceUID
        0x00200052,  # FrameOfReferenceUID
        0x00200200,  # SynchronizationFrameOfReferenceUID
        0x0040A124,  # UID
        0x00880140,  # StorageMediaFileSetUID
        0x30060024,  # ReferencedFrameOfReferenceUID
        0x300600C2,  # RelatedFrameOfReferenceUID
    }),
)

#: DicomVersion "2017c": 215 removals, 20 clearings, 29 UIDs.
PROFILE_2017C = Profile(
    method="PS 3.15-2017c Table E.1-1 Basic Profile",
    removals=frozenset({
        0x00080015,  # InstanceCoercionDateTime
        0x00080021,  # SeriesDate
        0x00080022,  # AcquisitionDate
        0x00080024,  # OverlayDate
        0x00080025,  # CurveDate
        0x0008002A,  # AcquisitionDateTime
        0x00080031,  # SeriesTime
        0x00080032,  # AcquisitionTime
        0x00080034,  # OverlayTime
        0x00080035,  # CurveTime
        0x00080080,  # InstitutionName
        0x00080081,  # InstitutionAddress
        0x00080082,  # InstitutionCodeSequence
        0x00080092,  # ReferringPhysicianAddress
        0x00080094,  # ReferringPhysicianTelephoneNumbers
        0x00080096,  # ReferringPhysicianIdentificationSequence
        0x0008009D,  # ConsultingPhysicianIdentificationSequence
        0x00080201,  # TimezoneOffsetFromUTC
        0x00081010,  # StationName
        0x00081030,  # StudyDescription
        0x0008103E,  # SeriesDescription
        0x00081040,  # InstitutionalDepartmentName
        0x00081048,  # PhysiciansOfRecord
        0x00081049,  # PhysiciansOfRecordIdentificationSequence
        0x00081050,  # PerformingPhysicianName
        0x00081052,  # PerformingPhysicianIdentificationSequence
        0x00081060,  # NameOfPhysiciansReadingStudy
        0x00081062,  # PhysiciansReadingStudyIdentificationSequence
        0x00081070,  # OperatorsName
        0x00081072,  # OperatorIdentificationSequence
        0x00081080,  # AdmittingDiagnosesDescription
        0x00081084,  # AdmittingDiagnosesCodeSequence
        0x00081110,  # ReferencedStudySequence
        0x00081111,  # ReferencedPerformedProcedureStepSequence
        0x00081120,  # ReferencedPatientSequence
        0x00082111,  # DerivationDescription
        0x00084000,  # IdentifyingComments
        0x00100021,  # IssuerOfPatientID
        0x00100032,  # PatientBirthTime
        0x00100050,  # PatientInsurancePlanCodeSequence
        0x00100101,  # PatientPrimaryLanguageCodeSequence
        0x00100102,  # PatientPrimaryLanguageModifierCodeSequence
        0x00101000,  # OtherPatientIDs
        0x00101001,  # OtherPatientNames
        0x00101002,  # OtherPatientIDsSequence
        0x00101005,  # PatientBirthName
        0x00101010,  # PatientAge
        0x00101020,  # PatientSize
        0x00101030,  # PatientWeight
        0x00101040,  # PatientAddress
        0x00101050,  # InsurancePlanIdentification
        0x00101060,  # PatientMotherBirthName
        0x00101080,  # MilitaryRank
        0x00101081,  # BranchOfService
        0x00101090,  # MedicalRecordLocator
        0x00101100,  # ReferencedPatientPhotoSequence
        0x00102000,  # MedicalAlerts
        0x00102110,  # Allergies
        0x00102150,  # CountryOfResidence
        0x00102152,  # RegionOfResidence
        0x00102154,  # PatientTelephoneNumbers
        0x00102155,  # PatientTelecomInformation
        0x00102160,  # EthnicGroup
        0x00102180,  # Occupation
        0x001021A0,  # SmokingStatus
        0x001021B0,  # AdditionalPatientHistory
        0x001021C0,  # PregnancyStatus
        0x001021D0,  # LastMenstrualDate
        0x001021F0,  # PatientReligiousPreference
        0x00102203,  # PatientSexNeutered
        0x00102297,  # ResponsiblePerson
        0x00102299,  # ResponsibleOrganization
        0x00104000,  # PatientComments
        0x00181000,  # DeviceSerialNumber
        0x00181004,  # PlateID
        0x00181005,  # GeneratorID
        0x00181007,  # CassetteID
        0x00181008,  # GantryID
        0x00181030,  # ProtocolName
        0x00181400,  # AcquisitionDeviceProcessingDescription
        0x00184000,  # AcquisitionComments
        0x0018700A,  # DetectorID
        0x00189424,  # AcquisitionProtocolDescription
        0x00189516,  # StartAcquisitionDateTime
        0x00189517,  # EndAcquisitionDateTime
        0x0018A003,  # ContributionDescription
        0x00203401,  # ModifyingDeviceID
        0x00203404,  # ModifyingDeviceManufacturer
        0x00203406,  # ModifiedImageDescription
        0x00204000,  # ImageComments
        0x00209158,  # FrameComments
        0x00284000,  # ImagePresentationComments
        0x00320012,  # StudyIDIssuer
        0x00321020,  # ScheduledStudyLocation
        0x00321021,  # ScheduledStudyLocationAETitle
        0x00321030,  # ReasonForStudy
        0x00321032,  # RequestingPhysician
        0x00321033,  # RequestingService
        0x00321060,  # RequestedProcedureDescription
        0x00321070,  # RequestedContrastAgent
        0x00324000,  # StudyComments
        0x00380004,  # ReferencedPatientAliasSequence
        0x00380010,  # AdmissionID
        0x00380011,  # IssuerOfAdmissionID
        0x0038001E,  # ScheduledPatientInstitutionResidence
        0x00380020,  # AdmittingDate
        0x00380021,  # AdmittingTime
        0x00380040,  # DischargeDiagnosisDescription
        0x00380050,  # SpecialNeeds
        0x00380060,  # ServiceEpisodeID
        0x00380061,  # IssuerOfServiceEpisodeID
        0x00380062,  # ServiceEpisodeDescription
        0x00380300,  # CurrentPatientLocation
        0x00380400,  # PatientInstitutionResidence
        0x00380500,  # PatientState
        0x00384000,  # VisitComments
        0x00400001,  # ScheduledStationAETitle
        0x00400002,  # ScheduledProcedureStepStartDate
        0x00400003,  # ScheduledProcedureStepStartTime
        0x00400004,  # ScheduledProcedureStepEndDate
        0x00400005,  # ScheduledProcedureStepEndTime
        0x00400006,  # ScheduledPerformingPhysicianName
        0x00400007,  # ScheduledProcedureStepDescription
        0x0040000B,  # ScheduledPerformingPhysicianIdentificationSequence
        0x00400010,  # ScheduledStationName
        0x00400011,  # ScheduledProcedureStepLocation
        0x00400012,  # PreMedication
        0x00400241,  # PerformedStationAETitle
        0x00400242,  # PerformedStationName
        0x00400243,  # PerformedLocation
        0x00400244,  # PerformedProcedureStepStartDate
        0x00400245,  # PerformedProcedureStepStartTime
        0x00400250,  # PerformedProcedureStepEndDate
        0x00400251,  # PerformedProcedureStepEndTime
        0x00400253,  # PerformedProcedureStepID
        0x00400254,  # PerformedProcedureStepDescription
        0x00400275,  # RequestAttributesSequence
        0x00400280,  # CommentsOnThePerformedProcedureStep
        0x00400555,  # AcquisitionContextSequence
        0x00401001,  # RequestedProcedureID
        0x00401004,  # PatientTransportArrangements
        0x00401005,  # RequestedProcedureLocation
        0x00401010,  # NamesOfIntendedRecipientsOfResults
        0x00401011,  # IntendedRecipientsOfResultsIdentificationSequence
        0x00401102,  # PersonAddress
        0x00401103,  # PersonTelephoneNumbers
        0x00401104,  # PersonTelecomInformation
        0x00401400,  # RequestedProcedureComments
        0x00402001,  # ReasonForTheImagingServiceRequest
        0x00402008,  # OrderEnteredBy
        0x00402009,  # OrderEntererLocation
        0x00402010,  # OrderCallbackPhoneNumber
        0x00402011,  # OrderCallbackTelecomInformation
        0x00402400,  # ImagingServiceRequestComments
        0x00403001,  # ConfidentialityConstraintOnPatientDataDescription
        0x00404005,  # ScheduledProcedureStepStartDateTime
        0x00404010,  # ScheduledProcedureStepModificationDateTime
        0x00404011,  # ExpectedCompletionDateTime
        0x00404025,  # ScheduledStationNameCodeSequence
        0x00404027,  # ScheduledStationGeographicLocationCodeSequence
        0x00404028,  # PerformedStationNameCodeSequence
        0x00404030,  # PerformedStationGeographicLocationCodeSequence
        0x00404034,  # ScheduledHumanPerformersSequence
        0x00404035,  # ActualHumanPerformersSequence
        0x00404036,  # HumanPerformerOrganization
        0x00404037,  # HumanPerformerName
        0x00404050,  # PerformedProcedureStepStartDateTime
        0x00404051,  # PerformedProcedureStepEndDateTime
        0x00404052,  # ProcedureStepCancellationDateTime
        0x0040A027,  # VerifyingOrganization
        0x0040A078,  # AuthorObserverSequence
        0x0040A07A,  # ParticipantSequence
        0x0040A07C,  # CustodialOrganizationSequence
        0x0040A192,  # ObservationDateTrial
        0x0040A193,  # ObservationTimeTrial
        0x0040A307,  # CurrentObserverTrial
        0x0040A352,  # VerbalSourceTrial
        0x0040A353,  # AddressTrial
        0x0040A354,  # TelephoneNumberTrial
        0x0040A358,  # VerbalSourceIdentifierCodeSequenceTrial
        0x0040A730,  # ContentSequence
        0x00700086,  # ContentCreatorIdentificationCodeSequence
        0x00880200,  # IconImageSequence
        0x00880904,  # TopicTitle
        0x00880906,  # TopicSubject
        0x00880910,  # TopicAuthor
        0x00880912,  # TopicKeywords
        0x04000100,  # DigitalSignatureUID
        0x04000402,  # ReferencedDigitalSignatureSequence
        0x04000403,  # ReferencedSOPInstanceMACSequence
        0x04000404,  # MAC
        0x04000550,  # ModifiedAttributesSequence
        0x04000561,  # OriginalAttributesSequence
        0x20300020,  # TextString
        0x30080105,  # SourceSerialNumber
        0x300C0113,  # ReasonForOmissionDescription
        0x300E0008,  # ReviewerName
        0x40000010,  # Arbitrary
        0x40004000,  # TextComments
        0x40080042,  # ResultsIDIssuer
        0x40080102,  # InterpretationRecorder
        0x4008010A,  # InterpretationTranscriber
        0x4008010B,  # InterpretationText
        0x4008010C,  # InterpretationAuthor
        0x40080111,  # InterpretationApproverSequence
        0x40080114,  # PhysicianApprovingInterpretation
        0x40080115,  # InterpretationDiagnosisDescription
        0x40080118,  # ResultsDistributionListSequence
        0x40080119,  # DistributionName
        0x4008011A,  # DistributionAddress
        0x40080202,  # InterpretationIDIssuer
        0x40080300,  # Impressions
        0x40084000,  # ResultsComments
        0xFFFAFFFA,  # DigitalSignaturesSequence
        0xFFFCFFFC,  # DataSetTrailingPadding
    }),
    clearings=frozenset({
        0x00080020,  # StudyDate
        0x00080023,  # ContentDate
        0x00080030,  # StudyTime
        0x00080033,  # ContentTime
        0x00080050,  # AccessionNumber
        0x00080090,  # ReferringPhysicianName
        0x0008009C,  # ConsultingPhysicianName
        0x00100030,  # PatientBirthDate
        0x00100040,  # PatientSex
        0x00180010,  # ContrastBolusAgent
        0x00200010,  # StudyID
        0x00401101,  # PersonIdentificationCodeSequence
        0x00402016,  # PlacerOrderNumberImagingServiceRequest
        0x00402017,  # FillerOrderNumberImagingServiceRequest
        0x0040A073,  # VerifyingObserverSequence
        0x0040A075,  # VerifyingObserverName
        0x0040A088,  # VerifyingObserverIdentificationCodeSequence
        0x0040A123,  # PersonName
        0x00700001,  # GraphicAnnotationSequence
        0x00700084,  # ContentCreatorName
    }),
    uids=frozenset({
        0x00041511,  # ReferencedSOPInstanceUIDInFile
        0x00080014,  # InstanceCreatorUID
        0x00080058,  # FailedSOPInstanceUIDList
        0x00081155,  # ReferencedSOPInstanceUID
        0x00081195,  # TransactionUID
        0x00083010,  # IrradiationEventUID
        0x00181002,  # DeviceUID
        0x00182042,  # TargetUID
        0x00200052,  # FrameOfReferenceUID
        0x00200200,  # SynchronizationFrameOfReferenceUID
        0x00209161,  # ConcatenationUID
        0x00209164,  # DimensionOrganizationUID
        0x00281199,  # PaletteColorLookupTableUID
        0x00281214,  # LargePaletteColorLookupTableUID
        0x00404023,  # ReferencedGeneralPurposeScheduledProcedureStepTransactionUID
        0x0040A124,  # UID
        0x0040A171,  # ObservationUID
        0x0040A172,  # ReferencedObservationUIDTrial
        0x0040A402,  # ObservationSubjectUIDTrial
        0x0040DB0C,  # TemplateExtensionOrganizationUID
        0x0040DB0D,  # TemplateExtensionCreatorUID
        0x00620021,  # TrackingUID
        0x0070031A,  # FiducialUID
        0x00701101,  # PresentationDisplayCollectionUID
        0x00701102,  # PresentationSequenceCollectionUID
        0x00880140,  # StorageMediaFileSetUID
        0x30060024,  # ReferencedFrameOfReferenceUID
        0x300600C2,  # RelatedFrameOfReferenceUID
        0x300A0013,  # DoseReferenceUID
    }),
)

#: DicomVersion "2021b": 316 removals, 85 clearings, 45 UIDs.
PROFILE_2021B = Profile(
    method="PS 3.15-2021b Table E.1-1 Basic Profile",
    removals=frozenset({
        0x00080015,  # InstanceCoercionDateTime
        0x00080021,  # SeriesDate
        0x00080022,  # AcquisitionDate
        0x00080024,  # OverlayDate
        0x00080025,  # CurveDate
        0x0008002A,  # AcquisitionDateTime
        0x00080031,  # SeriesTime
        0x00080032,  # AcquisitionTime
        0x00080034,  # OverlayTime
        0x00080035,  # CurveTime
        0x00080080,  # InstitutionName
        0x00080081,  # InstitutionAddress
        0x00080082,  # InstitutionCodeSequence
        0x00080092,  # ReferringPhysicianAddress
        0x00080094,  # ReferringPhysicianTelephoneNumbers
        0x00080096,  # ReferringPhysicianIdentificationSequence
        0x0008009D,  # ConsultingPhysicianIdentificationSequence
        0x00080201,  # TimezoneOffsetFromUTC
        0x00081010,  # StationName
        0x00081030,  # StudyDescription
        0x0008103E,  # SeriesDescription
        0x00081040,  # InstitutionalDepartmentName
        0x00081041,  # InstitutionalDepartmentTypeCodeSequence
        0x00081048,  # PhysiciansOfRecord
        0x00081049,  # PhysiciansOfRecordIdentificationSequence
        0x00081050,  # PerformingPhysicianName
        0x00081052,  # PerformingPhysicianIdentificationSequence
        0x00081060,  # NameOfPhysiciansReadingStudy
        0x00081062,  # PhysiciansReadingStudyIdentificationSequence
        0x00081070,  # OperatorsName
        0x00081072,  # OperatorIdentificationSequence
        0x00081080,  # AdmittingDiagnosesDescription
        0x00081084,  # AdmittingDiagnosesCodeSequence
        0x00081110,  # ReferencedStudySequence
        0x00081111,  # ReferencedPerformedProcedureStepSequence
        0x00081120,  # ReferencedPatientSequence
        0x00082111,  # DerivationDescription
        0x00084000,  # IdentifyingComments
        0x00100021,  # IssuerOfPatientID
        0x00100032,  # PatientBirthTime
        0x00100050,  # PatientInsurancePlanCodeSequence
        0x00100101,  # PatientPrimaryLanguageCodeSequence
        0x00100102,  # PatientPrimaryLanguageModifierCodeSequence
        0x00101000,  # OtherPatientIDs
        0x00101001,  # OtherPatientNames
        0x00101002,  # OtherPatientIDsSequence
        0x00101005,  # PatientBirthName
        0x00101010,  # PatientAge
        0x00101020,  # PatientSize
        0x00101030,  # PatientWeight
        0x00101040,  # PatientAddress
        0x00101050,  # InsurancePlanIdentification
        0x00101060,  # PatientMotherBirthName
        0x00101080,  # MilitaryRank
        0x00101081,  # BranchOfService
        0x00101090,  # MedicalRecordLocator
        0x00101100,  # ReferencedPatientPhotoSequence
        0x00102000,  # MedicalAlerts
        0x00102110,  # Allergies
        0x00102150,  # CountryOfResidence
        0x00102152,  # RegionOfResidence
        0x00102154,  # PatientTelephoneNumbers
        0x00102155,  # PatientTelecomInformation
        0x00102160,  # EthnicGroup
        0x00102180,  # Occupation
        0x001021A0,  # SmokingStatus
        0x001021B0,  # AdditionalPatientHistory
        0x001021C0,  # PregnancyStatus
        0x001021D0,  # LastMenstrualDate
        0x001021F0,  # PatientReligiousPreference
        0x00102203,  # PatientSexNeutered
        0x00102297,  # ResponsiblePerson
        0x00102299,  # ResponsibleOrganization
        0x00104000,  # PatientComments
        0x00120051,  # ClinicalTrialTimePointDescription
        0x00120071,  # ClinicalTrialSeriesID
        0x00120072,  # ClinicalTrialSeriesDescription
        0x00120082,  # ClinicalTrialProtocolEthicsCommitteeApprovalNumber
        0x0016002B,  # MakerNote
        0x0016004B,  # DeviceSettingDescription
        0x0016004D,  # CameraOwnerName
        0x0016004E,  # LensSpecification
        0x0016004F,  # LensMake
        0x00160050,  # LensModel
        0x00160051,  # LensSerialNumber
        0x00160070,  # GPSVersionID
        0x00160071,  # GPSLatitudeRef
        0x00160072,  # GPSLatitude
        0x00160073,  # GPSLongitudeRef
        0x00160074,  # GPSLongitude
        0x00160075,  # GPSAltitudeRef
        0x00160076,  # GPSAltitude
        0x00160077,  # GPSTimeStamp
        0x00160078,  # GPSSatellites
        0x00160079,  # GPSStatus
        0x0016007A,  # GPSMeasureMode
        0x0016007B,  # GPSDOP
        0x0016007C,  # GPSSpeedRef
        0x0016007D,  # GPSSpeed
        0x0016007E,  # GPSTrackRef
        0x0016007F,  # GPSTrack
        0x00160080,  # GPSImgDirectionRef
        0x00160081,  # GPSImgDirection
        0x00160082,  # GPSMapDatum
        0x00160083,  # GPSDestLatitudeRef
        0x00160084,  # GPSDestLatitude
        0x00160085,  # GPSDestLongitudeRef
        0x00160086,  # GPSDestLongitude
        0x00160087,  # GPSDestBearingRef
        0x00160088,  # GPSDestBearing
        0x00160089,  # GPSDestDistanceRef
        0x0016008A,  # GPSDestDistance
        0x0016008B,  # GPSProcessingMethod
        0x0016008C,  # GPSAreaInformation
        0x0016008D,  # GPSDateStamp
        0x0016008E,  # GPSDifferential
        0x00181000,  # DeviceSerialNumber
        0x00181004,  # PlateID
        0x00181005,  # GeneratorID
        0x00181007,  # CassetteID
        0x00181008,  # GantryID
        0x00181009,  # UniqueDeviceIdentifier
        0x0018100A,  # UDISequence
        0x00181030,  # ProtocolName
        0x00181400,  # AcquisitionDeviceProcessingDescription
        0x00184000,  # AcquisitionComments
        0x00185011,  # TransducerIdentificationSequence
        0x0018700A,  # DetectorID
        0x00189185,  # RespiratoryMotionCompensationTechniqueDescription
        0x00189373,  # XRayDetectorLabel
        0x0018937B,  # MultienergyAcquisitionDescription
        0x0018937F,  # DecompositionDescription
        0x00189424,  # AcquisitionProtocolDescription
        0x00189516,  # StartAcquisitionDateTime
        0x00189517,  # EndAcquisitionDateTime
        0x00189937,  # RequestedSeriesDescription
        0x0018A003,  # ContributionDescription
        0x00203401,  # ModifyingDeviceID
        0x00203406,  # ModifiedImageDescription
        0x00204000,  # ImageComments
        0x00209158,  # FrameComments
        0x00284000,  # ImagePresentationComments
        0x00320012,  # StudyIDIssuer
        0x00321020,  # ScheduledStudyLocation
        0x00321021,  # ScheduledStudyLocationAETitle
        0x00321030,  # ReasonForStudy
        0x00321032,  # RequestingPhysician
        0x00321033,  # RequestingService
        0x00321060,  # RequestedProcedureDescription
        0x00321066,  # ReasonForVisit
        0x00321067,  # ReasonForVisitCodeSequence
        0x00321070,  # RequestedContrastAgent
        0x00324000,  # StudyComments
        0x00380004,  # ReferencedPatientAliasSequence
        0x00380010,  # AdmissionID
        0x00380011,  # IssuerOfAdmissionID
        0x00380014,  # IssuerOfAdmissionIDSequence
        0x0038001E,  # ScheduledPatientInstitutionResidence
        0x00380020,  # AdmittingDate
        0x00380021,  # AdmittingTime
        0x00380040,  # DischargeDiagnosisDescription
        0x00380050,  # SpecialNeeds
        0x00380060,  # ServiceEpisodeID
        0x00380061,  # IssuerOfServiceEpisodeID
        0x00380062,  # ServiceEpisodeDescription
        0x00380064,  # IssuerOfServiceEpisodeIDSequence
        0x00380300,  # CurrentPatientLocation
        0x00380400,  # PatientInstitutionResidence
        0x00380500,  # PatientState
        0x00384000,  # VisitComments
        0x00400001,  # ScheduledStationAETitle
        0x00400002,  # ScheduledProcedureStepStartDate
        0x00400003,  # ScheduledProcedureStepStartTime
        0x00400004,  # ScheduledProcedureStepEndDate
        0x00400005,  # ScheduledProcedureStepEndTime
        0x00400006,  # ScheduledPerformingPhysicianName
        0x00400007,  # ScheduledProcedureStepDescription
        0x00400009,  # ScheduledProcedureStepID
        0x0040000B,  # ScheduledPerformingPhysicianIdentificationSequence
        0x00400010,  # ScheduledStationName
        0x00400011,  # ScheduledProcedureStepLocation
        0x00400012,  # PreMedication
        0x00400241,  # PerformedStationAETitle
        0x00400242,  # PerformedStationName
        0x00400243,  # PerformedLocation
        0x00400244,  # PerformedProcedureStepStartDate
        0x00400245,  # PerformedProcedureStepStartTime
        0x00400250,  # PerformedProcedureStepEndDate
        0x00400251,  # PerformedProcedureStepEndTime
        0x00400253,  # PerformedProcedureStepID
        0x00400254,  # PerformedProcedureStepDescription
        0x00400275,  # RequestAttributesSequence
        0x00400280,  # CommentsOnThePerformedProcedureStep
        0x00400310,  # CommentsOnRadiationDose
        0x0040050A,  # SpecimenAccessionNumber
        0x0040051A,  # ContainerDescription
        0x00400555,  # AcquisitionContextSequence
        0x00400600,  # SpecimenShortDescription
        0x00400602,  # SpecimenDetailedDescription
        0x004006FA,  # SlideIdentifier
        0x00401001,  # RequestedProcedureID
        0x00401002,  # ReasonForTheRequestedProcedure
        0x00401004,  # PatientTransportArrangements
        0x00401005,  # RequestedProcedureLocation
        0x0040100A,  # ReasonForRequestedProcedureCodeSequence
        0x00401010,  # NamesOfIntendedRecipientsOfResults
        0x00401011,  # IntendedRecipientsOfResultsIdentificationSequence
        0x00401102,  # PersonAddress
        0x00401103,  # PersonTelephoneNumbers
        0x00401104,  # PersonTelecomInformation
        0x00401400,  # RequestedProcedureComments
        0x00402001,  # ReasonForTheImagingServiceRequest
        0x00402008,  # OrderEnteredBy
        0x00402009,  # OrderEntererLocation
        0x00402010,  # OrderCallbackPhoneNumber
        0x00402011,  # OrderCallbackTelecomInformation
        0x00402400,  # ImagingServiceRequestComments
        0x00403001,  # ConfidentialityConstraintOnPatientDataDescription
        0x00404005,  # ScheduledProcedureStepStartDateTime
        0x00404008,  # ScheduledProcedureStepExpirationDateTime
        0x00404010,  # ScheduledProcedureStepModificationDateTime
        0x00404011,  # ExpectedCompletionDateTime
        0x00404025,  # ScheduledStationNameCodeSequence
        0x00404027,  # ScheduledStationGeographicLocationCodeSequence
        0x00404028,  # PerformedStationNameCodeSequence
        0x00404030,  # PerformedStationGeographicLocationCodeSequence
        0x00404034,  # ScheduledHumanPerformersSequence
        0x00404035,  # ActualHumanPerformersSequence
        0x00404036,  # HumanPerformerOrganization
        0x00404037,  # HumanPerformerName
        0x00404050,  # PerformedProcedureStepStartDateTime
        0x00404051,  # PerformedProcedureStepEndDateTime
        0x00404052,  # ProcedureStepCancellationDateTime
        0x0040A078,  # AuthorObserverSequence
        0x0040A07A,  # ParticipantSequence
        0x0040A07C,  # CustodialOrganizationSequence
        0x0040A192,  # ObservationDateTrial
        0x0040A193,  # ObservationTimeTrial
        0x0040A307,  # CurrentObserverTrial
        0x0040A352,  # VerbalSourceTrial
        0x0040A353,  # AddressTrial
        0x0040A354,  # TelephoneNumberTrial
        0x0040A358,  # VerbalSourceIdentifierCodeSequenceTrial
        0x0050001B,  # ContainerComponentID
        0x00500020,  # DeviceDescription
        0x00500021,  # LongDeviceDescription
        0x00700086,  # ContentCreatorIdentificationCodeSequence
        0x00880200,  # IconImageSequence
        0x00880904,  # TopicTitle
        0x00880906,  # TopicSubject
        0x00880910,  # TopicAuthor
        0x00880912,  # TopicKeywords
        0x04000402,  # ReferencedDigitalSignatureSequence
        0x04000403,  # ReferencedSOPInstanceMACSequence
        0x04000404,  # MAC
        0x04000550,  # ModifiedAttributesSequence
        0x04000551,  # NonconformingModifiedAttributesSequence
        0x04000552,  # NonconformingDataElementValue
        0x04000561,  # OriginalAttributesSequence
        0x04000600,  # InstanceOriginStatus
        0x20300020,  # TextString
        0x22000002,  # LabelText
        0x22000005,  # BarcodeValue
        0x30060004,  # StructureSetName
        0x30060006,  # StructureSetDescription
        0x30060028,  # ROIDescription
        0x30060038,  # ROIGenerationDescription
        0x30060085,  # ROIObservationLabel
        0x30060088,  # ROIObservationDescription
        0x30080054,  # FirstTreatmentDate
        0x30080056,  # MostRecentTreatmentDate
        0x30080105,  # SourceSerialNumber
        0x30080250,  # TreatmentDate
        0x30080251,  # TreatmentTime
        0x300A0003,  # RTPlanName
        0x300A0004,  # RTPlanDescription
        0x300A0006,  # RTPlanDate
        0x300A0007,  # RTPlanTime
        0x300A000E,  # PrescriptionDescription
        0x300A0016,  # DoseReferenceDescription
        0x300A0072,  # FractionGroupDescription
        0x300A00B2,  # TreatmentMachineName
        0x300A00C3,  # BeamDescription
        0x300A00DD,  # BolusDescription
        0x300A0196,  # FixationDeviceDescription
        0x300A01A6,  # ShieldingDeviceDescription
        0x300A01B2,  # SetupTechniqueDescription
        0x300A0216,  # SourceManufacturer
        0x300A02EB,  # CompensatorDescription
        0x300A0676,  # EquipmentFrameOfReferenceDescription
        0x300C0113,  # ReasonForOmissionDescription
        0x300E0008,  # ReviewerName
        0x30100036,  # EntityName
        0x30100037,  # EntityDescription
        0x3010004C,  # IntendedPhaseStartDate
        0x3010004D,  # IntendedPhaseEndDate
        0x30100056,  # RTTreatmentApproachLabel
        0x30100061,  # PriorTreatmentDoseDescription
        0x40000010,  # Arbitrary
        0x40004000,  # TextComments
        0x40080042,  # ResultsIDIssuer
        0x40080102,  # InterpretationRecorder
        0x4008010A,  # InterpretationTranscriber
        0x4008010B,  # InterpretationText
        0x4008010C,  # InterpretationAuthor
        0x40080111,  # InterpretationApproverSequence
        0x40080114,  # PhysicianApprovingInterpretation
        0x40080115,  # InterpretationDiagnosisDescription
        0x40080118,  # ResultsDistributionListSequence
        0x40080119,  # DistributionName
        0x4008011A,  # DistributionAddress
        0x40080202,  # InterpretationIDIssuer
        0x40080300,  # Impressions
        0x40084000,  # ResultsComments
        0xFFFAFFFA,  # DigitalSignaturesSequence
        0xFFFCFFFC,  # DataSetTrailingPadding
    }),
    clearings=frozenset({
        0x00080020,  # StudyDate
        0x00080023,  # ContentDate
        0x00080030,  # StudyTime
        0x00080033,  # ContentTime
        0x00080050,  # AccessionNumber
        0x00080090,  # ReferringPhysicianName
        0x0008009C,  # ConsultingPhysicianName
        0x00100030,  # PatientBirthDate
        0x00100040,  # PatientSex
        0x00120010,  # ClinicalTrialSponsorName
        0x00120020,  # ClinicalTrialProtocolID
        0x00120021,  # ClinicalTrialProtocolName
        0x00120030,  # ClinicalTrialSiteID
        0x00120031,  # ClinicalTrialSiteName
        0x00120040,  # ClinicalTrialSubjectID
        0x00120042,  # ClinicalTrialSubjectReadingID
        0x00120050,  # ClinicalTrialTimePointID
        0x00120060,  # ClinicalTrialCoordinatingCenterName
        0x00120081,  # ClinicalTrialProtocolEthicsCommitteeName
        0x00180010,  # ContrastBolusAgent
        0x001811BB,  # AcquisitionFieldOfViewLabel
        0x00189367,  # XRaySourceID
        0x00189369,  # SourceStartDateTime
        0x0018936A,  # SourceEndDateTime
        0x00189371,  # XRayDetectorID
        0x00200010,  # StudyID
        0x00340001,  # FlowIdentifierSequence
        0x00340002,  # FlowIdentifier
        0x00340005,  # SourceIdentifier
        0x00340007,  # FrameOriginTimestamp
        0x003A0314,  # ImpedanceMeasurementDateTime
        0x00400512,  # ContainerIdentifier
        0x00400513,  # IssuerOfTheContainerIdentifierSequence
        0x00400551,  # SpecimenIdentifier
        0x00400562,  # IssuerOfTheSpecimenIdentifierSequence
        0x00400610,  # SpecimenPreparationSequence
        0x00401101,  # PersonIdentificationCodeSequence
        0x00402016,  # PlacerOrderNumberImagingServiceRequest
        0x00402017,  # FillerOrderNumberImagingServiceRequest
        0x0040A027,  # VerifyingOrganization
        0x0040A073,  # VerifyingObserverSequence
        0x0040A075,  # VerifyingObserverName
        0x0040A088,  # VerifyingObserverIdentificationCodeSequence
        0x0040A123,  # PersonName
        0x0040A730,  # ContentSequence
        0x00700001,  # GraphicAnnotationSequence
        0x00700084,  # ContentCreatorName
        0x30060002,  # StructureSetLabel
        0x30060008,  # StructureSetDate
        0x30060009,  # StructureSetTime
        0x30060026,  # ROIName
        0x300600A6,  # ROIInterpreter
        0x300A0002,  # RTPlanLabel
        0x300A0608,  # TreatmentPositionGroupLabel
        0x300A0611,  # RTAccessoryHolderSlotID
        0x300A0615,  # RTAccessoryDeviceSlotID
        0x300A0619,  # RadiationDoseIdentificationLabel
        0x300A0623,  # RadiationDoseInVivoMeasurementLabel
        0x300A062A,  # RTToleranceSetLabel
        0x300A067C,  # RadiationGenerationModeLabel
        0x300A067D,  # RadiationGenerationModeDescription
        0x300A0734,  # TreatmentToleranceViolationDescription
        0x300A0736,  # TreatmentToleranceViolationDateTime
        0x300A073A,  # RecordedRTControlPointDateTime
        0x300A0741,  # InterlockDateTime
        0x300A0742,  # InterlockDescription
        0x300A0760,  # OverrideDateTime
        0x300A0783,  # InterlockOriginDescription
        0x3010000F,  # ConceptualVolumeCombinationDescription
        0x30100017,  # ConceptualVolumeDescription
        0x3010001B,  # DeviceAlternateIdentifier
        0x3010002D,  # DeviceLabel
        0x30100033,  # UserContentLabel
        0x30100034,  # UserContentLongLabel
        0x30100035,  # EntityLabel
        0x30100038,  # EntityLongLabel
        0x30100043,  # ManufacturerDeviceIdentifier
        0x30100054,  # RTPrescriptionLabel
        0x3010005A,  # RTPhysicianIntentNarrative
        0x3010005C,  # ReasonForSuperseding
        0x30100077,  # TreatmentSite
        0x3010007A,  # TreatmentTechniqueNotes
        0x3010007B,  # PrescriptionNotes
        0x3010007F,  # FractionationNotes
        0x30100081,  # PrescriptionNotesSequence
    }),
    uids=frozenset({
        0x00041511,  # ReferencedSOPInstanceUIDInFile
        0x00080014,  # InstanceCreatorUID
        0x00080058,  # FailedSOPInstanceUIDList
        0x00081155,  # ReferencedSOPInstanceUID
        0x00081195,  # TransactionUID
        0x00083010,  # IrradiationEventUID
        0x00181002,  # DeviceUID
        0x0018100B,  # ManufacturerDeviceClassUID
        0x00182042,  # TargetUID
        0x00200052,  # FrameOfReferenceUID
        0x00200200,  # SynchronizationFrameOfReferenceUID
        0x00209161,  # ConcatenationUID
        0x00209164,  # DimensionOrganizationUID
        0x00281199,  # PaletteColorLookupTableUID
        0x00281214,  # LargePaletteColorLookupTableUID
        0x003A0310,  # MultiplexGroupUID
        0x00400554,  # SpecimenUID
        0x00404023,  # ReferencedGeneralPurposeScheduledProcedureStepTransactionUID
        0x0040A124,  # UID
        0x0040A171,  # ObservationUID
        0x0040A172,  # ReferencedObservationUIDTrial
        0x0040A402,  # ObservationSubjectUIDTrial
        0x0040DB0C,  # TemplateExtensionOrganizationUID
        0x0040DB0D,  # TemplateExtensionCreatorUID
        0x00620021,  # TrackingUID
        0x0070031A,  # FiducialUID
        0x00701101,  # PresentationDisplayCollectionUID
        0x00701102,  # PresentationSequenceCollectionUID
        0x00880140,  # StorageMediaFileSetUID
        0x04000100,  # DigitalSignatureUID
        0x30060024,  # ReferencedFrameOfReferenceUID
        0x300600C2,  # RelatedFrameOfReferenceUID
        0x300A0013,  # DoseReferenceUID
        0x300A0083,  # ReferencedDoseReferenceUID
        0x300A0609,  # TreatmentPositionGroupUID
        0x300A0650,  # PatientSetupUID
        0x300A0700,  # TreatmentSessionUID
        0x30100006,  # ConceptualVolumeUID
        0x3010000B,  # ReferencedConceptualVolumeUID
        0x30100013,  # ConstituentConceptualVolumeUID
        0x30100015,  # SourceConceptualVolumeUID
        0x30100031,  # ReferencedFiducialsUID
        0x3010003B,  # RTTreatmentPhaseUID
        0x3010006E,  # DosimetricObjectiveUID
        0x3010006F,  # ReferencedDosimetricObjectiveUID
    }),
)
#: DicomVersion "2023b" (Orthanc 1.12.1's default): the 2021b profile with the changes of
#: PS 3.15-2023b Table E.1-1 (tags added to a column, or moved out of one).
_2023B_REMOVALS_ADDED = frozenset({
    0x00080012,  # Instance Creation Date
    0x00080013,  # Instance Creation Time
    0x00080054,  # Retrieve AE Title
    0x00080055,  # Station AE Title
    0x00081000,  # Network ID
    0x00081088,  # Pyramid Description
    0x00120086,  # Ethics Committee Approval Effectiveness Start Date
    0x00120087,  # Ethics Committee Approval Effectiveness End Date
    0x0014407C,  # Calibration Time
    0x0014407E,  # Calibration Date
    0x00180027,  # Intervention Drug Stop Time
    0x00180035,  # Intervention Drug Start Time
    0x00181012,  # Date of Secondary Capture
    0x00181014,  # Time of Secondary Capture
    0x00181042,  # Contrast/Bolus Start Time
    0x00181043,  # Contrast/Bolus Stop Time
    0x00181072,  # Radiopharmaceutical Start Time
    0x00181073,  # Radiopharmaceutical Stop Time
    0x00181078,  # Radiopharmaceutical Start DateTime
    0x00181079,  # Radiopharmaceutical Stop DateTime
    0x00181200,  # Date of Last Calibration
    0x00181201,  # Time of Last Calibration
    0x00181202,  # DateTime of Last Calibration
    0x0018700C,  # Date of Last Detector Calibration
    0x0018700E,  # Time of Last Detector Calibration
    0x0018A002,  # Contribution DateTime
    0x00200027,  # Pyramid Label
    0x00203403,  # Modified Image Date
    0x00203405,  # Modified Image Time
    0x00320032,  # Study Verified Date
    0x00320033,  # Study Verified Time
    0x00320034,  # Study Read Date
    0x00320035,  # Study Read Time
    0x00321000,  # Scheduled Study Start Date
    0x00321001,  # Scheduled Study Start Time
    0x00321010,  # Scheduled Study Stop Date
    0x00321011,  # Scheduled Study Stop Time
    0x00321040,  # Study Arrival Date
    0x00321041,  # Study Arrival Time
    0x00321050,  # Study Completion Date
    0x00321051,  # Study Completion Time
    0x0038001A,  # Scheduled Admission Date
    0x0038001B,  # Scheduled Admission Time
    0x0038001C,  # Scheduled Discharge Date
    0x0038001D,  # Scheduled Discharge Time
    0x00380030,  # Discharge Date
    0x00380032,  # Discharge Time
    0x003A0329,  # Waveform Filter Description
    0x003A032B,  # Filter Lookup Table Description
    0x00402004,  # Issue Date of Imaging Service Request
    0x00402005,  # Issue Time of Imaging Service Request
    0x0040A023,  # Findings Group Recording Date (Trial)
    0x0040A024,  # Findings Group Recording Time (Trial)
    0x0040A032,  # Observation DateTime
    0x0040A033,  # Observation Start DateTime
    0x0040A110,  # Date of Document or Verbal Transaction (Trial)
    0x0040A112,  # Time of Document or Verbal Transaction (Trial)
    0x0040DB06,  # Template Version
    0x0040DB07,  # Template Local Version
    0x0040E004,  # HL7 Document Effective Time
    0x00440004,  # Approval Status DateTime
    0x0044000B,  # Product Expiration DateTime
    0x00440010,  # Substance Administration DateTime
    0x00440105,  # Assertion Expiration DateTime
    0x006A0006,  # Annotation Group Description
    0x00700082,  # Presentation Creation Date
    0x00700083,  # Presentation Creation Time
    0x00741234,  # Receiving AE
    0x00741236,  # Requesting AE
    0x01000420,  # SOP Authorization DateTime
    0x04000310,  # Certified Timestamp
    0x21000040,  # Creation Date
    0x21000050,  # Creation Time
    0x21000070,  # Originator
    0x30020121,  # Position Acquisition Template Name
    0x30020123,  # Position Acquisition Template Description
    0x300A000B,  # Treatment Sites
    0x300A078E,  # Patient Treatment Preparation Procedure Parameter Description
    0x300A0792,  # Patient Treatment Preparation Method Description
    0x300A0794,  # Patient Setup Photo Description
    0x300A079A,  # Displacement Reference Label
    0x30100077,  # Treatment Site
    0x30100085,  # Intended Fraction Start Time
    0x40080040,  # Results ID
    0x40080100,  # Interpretation Recorded Date
    0x40080101,  # Interpretation Recorded Time
    0x40080108,  # Interpretation Transcription Date
    0x40080109,  # Interpretation Transcription Time
    0x40080112,  # Interpretation Approval Date
    0x40080113,  # Interpretation Approval Time
    0x40080200,  # Interpretation ID
})
_2023B_CLEARINGS_ADDED = frozenset({
    0x00080106,  # Context Group Version
    0x00080107,  # Context Group Local Version
    0x00181203,  # Calibration DateTime
    0x00189074,  # Frame Acquisition DateTime
    0x00189151,  # Frame Reference DateTime
    0x00189623,  # Functional Sync Pulse
    0x00189701,  # Decay Correction DateTime
    0x00189804,  # Exclusion Start DateTime
    0x00189919,  # Instruction Performed DateTime
    0x0040A030,  # Verification DateTime
    0x0040A082,  # Participation DateTime
    0x0040A120,  # DateTime
    0x0040A121,  # Date
    0x0040A122,  # Time
    0x0040A13A,  # Referenced DateTime
    0x00420011,  # Encapsulated Document
    0x00440104,  # Assertion DateTime
    0x00686226,  # Effective DateTime
    0x00686270,  # Information Issue DateTime
    0x006A0003,  # Annotation Group UID
    0x006A0005,  # Annotation Group Label
    0x0072000A,  # Hanging Protocol Creation DateTime
    0x0072005E,  # Selector AE Value
    0x0072005F,  # Selector AS Value
    0x00720061,  # Selector DA Value
    0x00720063,  # Selector DT Value
    0x00720065,  # Selector OB Value
    0x00720066,  # Selector LO Value
    0x00720068,  # Selector LT Value
    0x0072006A,  # Selector PN Value
    0x0072006B,  # Selector TM Value
    0x0072006C,  # Selector SH Value
    0x0072006D,  # Selector UN Value
    0x0072006E,  # Selector ST Value
    0x00720070,  # Selector UT Value
    0x00720071,  # Selector UR Value
    0x04000105,  # Digital Signature DateTime
    0x04000115,  # Certificate of Signer
    0x04000562,  # Attribute Modification DateTime
    0x04000563,  # Modifying System
    0x04000564,  # Source of Previous Values
    0x04000565,  # Reason for the Attribute Modification
    0x21000140,  # Destination AE
    0x30080024,  # Treatment Control Point Date
    0x30080025,  # Treatment Control Point Time
    0x30080162,  # Safe Position Exit Date
    0x30080164,  # Safe Position Exit Time
    0x30080166,  # Safe Position Return Date
    0x30080168,  # Safe Position Return Time
    0x300A022C,  # Source Strength Reference Date
    0x300A022E,  # Source Strength Reference Time
    0x300C0127,  # Beam Hold Transition DateTime
    0x300E0004,  # Review Date
    0x300E0005,  # Review Time
})
_2023B_UIDS_ADDED = frozenset({
    0x00080017,  # Acquisition UID
    0x00080019,  # Pyramid UID
    0x00640003,  # Source Frame of Reference UID
    0x300A0785,  # Referenced Treatment Position Group UID
})
_2023B_CLEARINGS_DROPPED = frozenset({
    0x30100077,  # Treatment Site
})
PROFILE_2023B = Profile(
    method="PS 3.15-2023b Table E.1-1 Basic Profile",
    removals=PROFILE_2021B.removals | _2023B_REMOVALS_ADDED,
    clearings=(PROFILE_2021B.clearings - _2023B_CLEARINGS_DROPPED - _2023B_REMOVALS_ADDED
               - _2023B_UIDS_ADDED) | _2023B_CLEARINGS_ADDED,
    uids=PROFILE_2021B.uids | _2023B_UIDS_ADDED,
)


#: ``DicomVersion`` value -> profile, at the reported API level: "2023b" came with Orthanc
#: 1.12.1 (API 21) and became the default; Orthanc 1.10.1 defaults to "2021b".
PROFILES: dict[str, Profile] = {"2008": PROFILE_2008, "2017c": PROFILE_2017C, "2021b": PROFILE_2021B}
if server.ORTHANC_API_VERSION >= 21:
    PROFILES["2023b"] = PROFILE_2023B
DEFAULT_VERSION = "2023b" if server.ORTHANC_API_VERSION >= 21 else "2021b"
