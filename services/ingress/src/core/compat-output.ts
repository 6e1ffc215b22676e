export { answerValue, msBetween } from "@longhaul/shared/domain";
